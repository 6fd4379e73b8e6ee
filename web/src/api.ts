// The dashboard's actions and reads over HTTP (same origin; the session cookie goes along).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: body !== undefined ? { "Content-Type": "application/json" } : {},
    body: body !== undefined ? JSON.stringify(body) : null,
    credentials: "same-origin",
  });
  const data = (await res.json().catch(() => ({}))) as { message?: string; code?: string };
  if (!res.ok) throw new ApiError(res.status, data.code ?? "", data.message ?? res.statusText);
  return data as T;
}

const ref = (s: string) => encodeURIComponent(s);

export const api = {
  session: () => request<{ required: boolean; ok: boolean }>("GET", "/api/session"),
  login: (token: string) => request("POST", "/api/login", { token }),
  scale: (service: string, replicas: number) =>
    request("POST", `/api/services/${ref(service)}/scale`, { replicas }),
  rollback: (service: string) => request("POST", `/api/services/${ref(service)}/rollback`, {}),
  availability: (node: string, availability: "active" | "drain" | "pause") =>
    request("POST", `/api/nodes/${ref(node)}/availability`, { availability }),
  logs: (service: string, tail = 50) =>
    request<{ lines: string[] }>("GET", `/api/services/${ref(service)}/logs?tail=${tail}`),
};
