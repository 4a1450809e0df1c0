// ipx, a peer in make bench's on-request section (bench/peer_servers.py starts it pinned to
// one core): ipx's own node server over its file storage, on loopback.
//
//   node bench/ipx/server.mjs DIR PORT
//
// Two sharp options differ from ipx's defaults, so that every server answers the same request:
// autoOrient (ipx applies no EXIF orientation unless asked: a phone's portrait photo came out
// sideways) and jpegProgressive false (ipx makes progressive JPEGs; the others, baseline).
// ipx keeps no rendered results: the same URL again is rendered again. Its caching is HTTP's
// (Cache-Control max-age 60, Last-Modified, ETag), for a browser or CDN in front of it.
import http from "node:http";
import { createIPX, createIPXNodeServer, ipxFSStorage } from "ipx";

const [dir, port] = process.argv.slice(2);
const ipx = createIPX({
  storage: ipxFSStorage({ dir }),
  sharpOptions: { autoOrient: true, jpegProgressive: false },
});
http.createServer(createIPXNodeServer(ipx)).listen(Number(port), "127.0.0.1");
