// REST calls to the alerts service, with the bearer token.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

export type AuthFailure = (status: number, detail: string) => void;

/** A detail the service sent ("detail": a string, or a list of {field, problem}). */
export function detailOf(body: unknown, fallback: string): string {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) =>
          item && typeof item === "object" && "problem" in item
            ? `${(item as { field?: string }).field ?? ""}: ${(item as { problem: string }).problem}`
            : JSON.stringify(item),
        )
        .join("; ");
    }
  }
  return fallback;
}

export class Api {
  constructor(
    private readonly token: () => string,
    private readonly onAuthFailure: AuthFailure = () => undefined,
    private readonly base = "",
  ) {}

  async get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  private async request<T>(method: string, path: string, body?: unknown, retries = 3): Promise<T> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token()}`,
      Accept: "application/json",
    };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, `the alerts service is unreachable (${String(error)})`);
    }
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (response.status === 503 && retries > 0 && method === "GET") {
      const wait = Number(response.headers.get("Retry-After") ?? "2");
      await new Promise((resolve) => setTimeout(resolve, Math.min(10, Math.max(1, wait)) * 1000));
      return this.request<T>(method, path, body, retries - 1);
    }
    if (!response.ok) {
      const detail = detailOf(parsed, `${response.status} ${response.statusText}`);
      if (response.status === 401) this.onAuthFailure(401, detail);
      throw new ApiError(response.status, detail);
    }
    return parsed as T;
  }
}

/** A random UUID v4 (the idempotency key of an action); works outside secure contexts too. */
export function uuid4(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
