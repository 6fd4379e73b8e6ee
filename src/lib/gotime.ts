// Go's time.Time String() (`2017-03-24 08:15:09.735 +0000 UTC`), which Docker's CLI and
// nats-server print: seconds, the fraction without its trailing zeros, the offset and the zone's
// abbreviation.

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/**
 * `ms` as Go's time.Time String() prints it, in UTC or in local time (as Go's time.Unix gives it).
 * The local zone's abbreviation comes from Intl (CET is "GMT+1" there, where Go says "CET"); so
 * callers that know local time is UTC should ask for "utc", which also spares loading the zone data.
 */
export function goTimeString(ms: number, zone: "utc" | "local" = "utc"): string {
  const d = new Date(ms);
  const frac = pad(((ms % 1000) + 1000) % 1000, 3).replace(/0+$/, "");
  const tail = frac ? `.${frac}` : "";
  if (zone === "utc") {
    const iso = d.toISOString(); // 2017-03-24T08:15:09.735Z
    return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${tail} +0000 UTC`;
  }
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off);
  const name =
    new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
      .formatToParts(d)
      .find((p) => p.type === "timeZoneName")?.value ?? "";
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${tail} ` +
    `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)} ${name}`
  );
}
