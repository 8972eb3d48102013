import type { Step, StepDisplay, StepRenderer } from '../core/progress.js';

/**
 * The stages as listr2 draws them: a live display on a terminal, its plain lines elsewhere (CI, pipes).
 * Progress never goes to stdout, which --json keeps for its one document.
 */
export function listrSteps(options: { interactive: boolean; stream?: NodeJS.WritableStream }): StepRenderer {
  return {
    async run(steps: Step[]) {
      const { Listr, ListrLogger, ProcessOutput } = await import('listr2');
      const out = (options.stream ?? process.stderr) as NodeJS.WriteStream;
      const processOutput = new ProcessOutput(out, out);
      const rendererOptions = { processOutput, logger: new ListrLogger({ processOutput }) };
      const tasks = new Listr(
        steps.map((step) => ({
          title: step.title,
          // On a terminal the kept lines (each epoch's losses, warnings) stay under the stage, also after it ends.
          rendererOptions: { persistentOutput: true },
          task: async (_: unknown, task: { title: string; output: string }) => {
            const kept: string[] = [];
            const show = (current?: string) => (task.output = [...kept, ...(current ? [current] : [])].join('\n'));
            const display: StepDisplay = {
              get title() {
                return task.title;
              },
              set title(title: string) {
                task.title = title;
              },
              get output() {
                return task.output;
              },
              // Plain lines (CI, pipes) print every output once, so only a terminal gets the kept lines again.
              set output(line: string) {
                if (options.interactive) show(line);
                else task.output = line;
              },
              log(line: string) {
                kept.push(line);
                if (options.interactive) show();
                else task.output = line;
              },
            };
            await step.run(display);
            if (options.interactive) show();
          },
        })),
        {
          concurrent: false,
          exitOnError: true,
          renderer: options.interactive ? 'default' : 'simple',
          rendererOptions,
          fallbackRendererOptions: rendererOptions,
          collectErrors: false,
          registerSignalListeners: false,
        } as never,
      );
      await tasks.run();
    },
  };
}
