/** Reports per-batch progress of a long stage. */
export interface Progress {
  /**
   * `done` of `total` units (rows, bytes, ...) so far; the renderer adds rate and ETA. A new `phase`
   * restarts the rate; `note` (such as the running loss) is only shown.
   */
  update(done: number, total: number | undefined, unit: string, phase?: string, note?: string): void;
  /** A line for the run log (and the terminal when not on a TTY). */
  log(message: string): void;
}
