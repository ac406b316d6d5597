// The floor of a Node relay (the same program as ../shared/bench/node-floor.mjs, which the
// project's reference figures came from): every client connection gets its own backend
// connection, and bytes are copied both ways with backpressure and no HTTP parsing at all.
// Whatever a gateway written in Node spends above this per chunk is its own work.
//   node dist/bench/node-floor.js <listen port> <backend port>
import net from 'node:net';

const listenPort = Number(process.argv[2] ?? 18095);
const backendPort = Number(process.argv[3] ?? 11434);

net
  .createServer({ noDelay: true }, (client) => {
    const backend = net.connect({ port: backendPort, host: '127.0.0.1', noDelay: true });
    client.on('data', (d) => {
      if (!backend.write(d)) client.pause();
    });
    backend.on('drain', () => client.resume());
    backend.on('data', (d) => {
      if (!client.write(d)) backend.pause();
    });
    client.on('drain', () => backend.resume());
    const end = () => {
      client.destroy();
      backend.destroy();
    };
    for (const s of [client, backend]) {
      s.on('close', end);
      s.on('error', end);
    }
  })
  .listen(listenPort, '127.0.0.1', () => process.send?.('ready'));
