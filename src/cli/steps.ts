import type { Step, StepRenderer } from '../core/progress.js';

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
        steps.map((step) => ({ title: step.title, task: (_: unknown, task: { title: string; output: string }) => step.run(task) })),
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
