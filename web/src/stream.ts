// One server-sent-events stream of JSON messages of one event name. EventSource reconnects by
// itself; `onStatus` hears whether the stream is open, so the page can say when it is not live.

export function subscribe<T>(
  url: string,
  event: string,
  onMessage: (msg: T) => void,
  onStatus: (open: boolean) => void = () => {},
): () => void {
  const es = new EventSource(url);
  es.addEventListener(event, (e) => onMessage(JSON.parse((e as MessageEvent<string>).data) as T));
  es.addEventListener("open", () => onStatus(true));
  es.addEventListener("error", () => onStatus(false));
  return () => es.close();
}
