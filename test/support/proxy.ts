import net from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL, for network faults. `partition()` stops forwarding in both
 * directions without closing a socket, as a silent network partition does (nothing is refused,
 * nothing arrives); `heal()` delivers what was held back, in order, as TCP retransmission would.
 */
export class TcpProxy {
  private server?: net.Server;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private partitioned = false;
  private readonly held: Array<() => void> = [];
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Listens on a free port (port 0) and returns it. */
  async start(): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** A database URL like `url`, pointing at the proxy. */
  urlFor(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  partition(): void {
    this.partitioned = true;
  }

  heal(): void {
    this.partitioned = false;
    for (const deliver of this.held.splice(0)) deliver();
  }

  async close(): Promise<void> {
    this.heal();
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (this.partitioned) this.held.push(() => to.write(chunk));
        else to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    // A partition hides a closed socket from the other side too, until it heals.
    const end = () => {
      this.pairs.delete(pair);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      if (this.partitioned) this.held.push(close);
      else close();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }
}
