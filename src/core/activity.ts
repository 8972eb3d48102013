/** What the process is doing now (the stage in progress), for messages about a process that stopped early. */

let activity: string | undefined;

/** What the process is doing now, named in the message if it stops before finishing. */
export function setActivity(what: string | undefined): void {
  activity = what;
}

export function currentActivity(): string | undefined {
  return activity;
}
