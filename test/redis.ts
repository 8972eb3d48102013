import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { tempDir } from './helpers.js';

/** A free TCP port on 127.0.0.1 (asked of the system, then released for the server to take). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `redis-server` runs here. */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A Redis of its own for the calling suite (in a `before`): on a free port, in memory only, stopped
 * after the suite. Skips the suite, saying why, when redis-server is not installed (.ci/run installs it).
 */
export async function startRedis(ctx: Mocha.Context): Promise<{ url: string; port: number }> {
  if (!hasRedisServer()) {
    console.log('      (skipped: redis-server is not installed; apt-get install redis-server, as .ci/run does)');
    ctx.skip();
  }
  const dir = await tempDir('sentiment-redis-');
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    let output = '';
    const server: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => (output += d));
    server.stderr!.on('data', (d) => (output += d));
    let exited = false;
    server.once('exit', () => (exited = true));
    for (let i = 0; i < 100 && !exited; i++) {
      if (await ping(port)) {
        after(() => {
          server.kill('SIGKILL');
        });
        return { url: `redis://127.0.0.1:${port}`, port };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    server.kill('SIGKILL');
    // Another process took the port in between: try another.
    if (!/Address already in use/.test(output)) throw new Error(`redis-server did not start on port ${port}:\n${output}`);
  }
  throw new Error('redis-server found no free port in 3 attempts');
}
