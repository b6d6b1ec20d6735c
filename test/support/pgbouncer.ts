// A real PgBouncer (Debian's /usr/sbin/pgbouncer) in front of the test database, started by a test
// on a free port with an ini and a userlist of its own in a temporary directory.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DATABASE_URL } from './database.js';

export type PoolMode = 'session' | 'transaction';

export interface PgBouncerOptions {
  poolMode: PoolMode;
  /** Server connections are closed after this many seconds (recycled under their clients). */
  serverLifetimeS?: number;
  /** Idle server connections are closed after this many seconds. */
  serverIdleTimeoutS?: number;
  /** Server connections per database and user (default 10). */
  poolSize?: number;
}

const BINARY = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((file) => existsSync(file));

/** A pgbouncer process; `url` reaches the test database through it. */
export class PgBouncer {
  private constructor(
    private readonly process: ChildProcess,
    private readonly dir: string,
    readonly port: number,
    readonly url: string,
    private readonly output: { text: string },
  ) {}

  static async start(options: PgBouncerOptions): Promise<PgBouncer> {
    if (BINARY === undefined)
      throw new Error('pgbouncer is not installed: apt-get install -y pgbouncer (.ci/run does)');
    const target = new URL(DATABASE_URL);
    const dir = await mkdtemp(path.join(tmpdir(), 'pgbouncer-'));
    const port = await freePort();
    const ini = [
      '[databases]',
      `* = host=${target.hostname} port=${target.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir =`,
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      `pool_mode = ${options.poolMode}`,
      `default_pool_size = ${options.poolSize ?? 10}`,
      'max_client_conn = 200',
      `server_lifetime = ${options.serverLifetimeS ?? 3600}`,
      `server_idle_timeout = ${options.serverIdleTimeoutS ?? 600}`,
      'ignore_startup_parameters = extra_float_digits,options',
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n');
    await writeFile(path.join(dir, 'pgbouncer.ini'), ini);
    await writeFile(path.join(dir, 'userlist.txt'), `"${target.username || 'postgres'}" ""\n`);
    // PgBouncer refuses to run as root: it runs as the postgres user, who must read the files.
    const asUser = process.getuid?.() === 0 ? postgresUser() : {};
    if (process.getuid?.() === 0) await chmod(dir, 0o755);
    const output = { text: '' };
    const child = spawn(BINARY, [path.join(dir, 'pgbouncer.ini')], {
      ...asUser,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output.text += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output.text += chunk));
    const url = new URL(DATABASE_URL);
    url.hostname = '127.0.0.1';
    url.port = String(port);
    const bouncer = new PgBouncer(child, dir, port, url.toString(), output);
    await bouncer.listening();
    return bouncer;
  }

  /**
   * Transaction pooling whose server connections live 2 s and go after 1 s idle: every job
   * outlives many of them, so nothing may rely on a session.
   */
  static recycling(poolSize: number): Promise<PgBouncer> {
    return PgBouncer.start({
      poolMode: 'transaction',
      serverLifetimeS: 2,
      serverIdleTimeoutS: 1,
      poolSize,
    });
  }

  /** What pgbouncer logged (for a failing test's message). */
  get log(): string {
    return this.output.text;
  }

  async stop(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((resolve) => this.process.once('exit', resolve));
      this.process.kill('SIGTERM');
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Waits (bounded) until the port accepts connections. */
  private async listening(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.process.exitCode !== null)
        throw new Error(`pgbouncer exited at start:\n${this.output.text}`);
      if (await accepts(this.port)) return;
      if (Date.now() > deadline)
        throw new Error(`pgbouncer did not listen within 60 s:\n${this.output.text}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
  return { uid: id('-u'), gid: id('-g') };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
