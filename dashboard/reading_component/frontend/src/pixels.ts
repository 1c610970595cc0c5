// An image's 16-bit display values: fetched from the media URL Python registered and
// inflated with the browser's own DecompressionStream. One promise per URL, kept for the
// few most recent, so the prefetched next study opens without a network round trip.

const KEEP = 8;
const cache = new Map<string, Promise<Uint16Array>>();

async function fetchValues(url: string): Promise<Uint16Array> {
  const response = await fetch(url);
  if (!response.ok || !response.body) throw new Error(`image not served (${response.status})`);
  const inflated = response.body.pipeThrough(new DecompressionStream("deflate"));
  const buffer = await new Response(inflated).arrayBuffer();
  return new Uint16Array(buffer); // little-endian, as every browser platform is
}

export function loadValues(url: string): Promise<Uint16Array> {
  let pending = cache.get(url);
  if (pending) {
    cache.delete(url); // re-insert: most recently used last
  } else {
    pending = fetchValues(url);
    pending.catch(() => cache.delete(url));
  }
  cache.set(url, pending);
  while (cache.size > KEEP) cache.delete(cache.keys().next().value as string);
  return pending;
}

export function prefetch(urls: string[]): void {
  for (const url of urls) loadValues(url).catch(() => undefined); // a failed prefetch is retried on open
}
