// Signing in with a token (the JWT `lindero token` issues; `make demo` prints ready-made links).
//
// A link may carry the token in its fragment (`/#token=<jwt>`): fragments never reach a server or
// its logs. The page takes it, removes it from the address bar (and so from the history), and keeps
// it in sessionStorage (this tab only, gone when the tab closes). Without one, a form asks for it.

import { Api, ApiError } from "./api";
import { byId, h, replaceChildren } from "./dom";
import type { Me, Role } from "./types";

export type PageKind = "dashboard" | "team";

const SIGNED_OUT = "lindero.signout";
const STORAGE = { dashboard: "lindero.token.dashboard", team: "lindero.token.team" } as const;

export interface Claims {
  sub?: string;
  role?: Role;
  exp?: number;
  centre?: string;
  team?: string;
  country?: string;
}

/** The claims of a JWT, unverified (for display only: the server verifies every request). */
export function claimsOf(token: string): Claims | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const json = decodeURIComponent(
      Array.from(atob(base64), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    const claims: unknown = JSON.parse(json);
    return claims && typeof claims === "object" ? (claims as Claims) : null;
  } catch {
    return null;
  }
}

/** The token in the address's fragment (removed from the address bar), if any. */
function fromFragment(): string | null {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (token === null) return null;
  params.delete("token");
  const rest = params.toString();
  const clean = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
  window.history.replaceState(window.history.state, "", clean);
  return token.trim() || null;
}

export class Session {
  token = "";
  me: Me | null = null;

  constructor(readonly kind: PageKind) {}

  get storageKey(): string {
    return STORAGE[this.kind];
  }

  remember(token: string): void {
    this.token = token;
    try {
      sessionStorage.setItem(this.storageKey, token);
    } catch {
      // private mode without storage: the token lives as long as the page
    }
  }

  /** Forget the token; `reason` is shown on the sign-in form after the page reloads. */
  signOut(reason?: string): void {
    this.forget();
    try {
      if (reason) sessionStorage.setItem(SIGNED_OUT, reason);
    } catch {
      // no storage: the form shows without the reason
    }
    window.location.reload();
  }

  forget(): void {
    this.token = "";
    this.me = null;
    try {
      sessionStorage.removeItem(this.storageKey);
    } catch {
      // nothing stored
    }
  }

  stored(): string | null {
    try {
      return sessionStorage.getItem(this.storageKey);
    } catch {
      return null;
    }
  }

  /** Seconds until the token expires (by its own claim), or null. */
  expiresInS(): number | null {
    const exp = claimsOf(this.token)?.exp;
    return typeof exp === "number" ? exp - Date.now() / 1000 : null;
  }

  /**
   * Sign in: the fragment's token, else the stored one, else the form; checked against /v1/me.
   * `accept` says whether the role belongs on this page (else the form explains where to go).
   */
  async signIn(accept: (me: Me) => string | null): Promise<Me> {
    let candidate = fromFragment() ?? this.stored();
    let problem: string | null = null;
    try {
      problem = sessionStorage.getItem(SIGNED_OUT);
      sessionStorage.removeItem(SIGNED_OUT);
    } catch {
      problem = null;
    }
    for (;;) {
      if (!candidate) {
        candidate = await askForToken(this.kind, problem);
      }
      this.token = candidate;
      try {
        const me = await new Api(() => candidate ?? "").get<Me>("/v1/me");
        const refusal = accept(me);
        if (refusal === null) {
          this.remember(candidate);
          this.me = me;
          hideLogin();
          return me;
        }
        problem = refusal;
      } catch (error) {
        problem =
          error instanceof ApiError
            ? error.status === 0
              ? error.detail
              : `The alerts service refused this token: ${error.detail}`
            : String(error);
      }
      this.forget();
      candidate = null;
    }
  }
}

function hideLogin(): void {
  const login = document.getElementById("login");
  if (login) login.hidden = true;
  document.body.classList.remove("signed-out");
}

/** Show the sign-in form and wait for a token. */
function askForToken(kind: PageKind, problem: string | null): Promise<string> {
  const login = byId("login");
  document.body.classList.add("signed-out");
  login.hidden = false;
  const field = h("textarea", {
    id: "login-token",
    name: "token",
    rows: 5,
    required: true,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: "eyJhbGciOi…",
    "aria-describedby": "login-help",
  });
  const error = problem ? h("p", { class: "login-error", role: "alert", id: "login-error" }, problem) : null;
  const form = h(
    "form",
    { class: "login-form", id: "login-form" },
    h("h1", null, kind === "team" ? "Lindero · team view" : "Lindero · command dashboard"),
    h("label", { for: "login-token" }, "Access token"),
    field,
    h(
      "p",
      { id: "login-help", class: "hint" },
      "Paste the token `lindero token` issued for you (or open a link `make demo` printed). ",
      "It stays in this browser tab only.",
    ),
    error,
    h("button", { type: "submit", class: "primary", id: "login-submit" }, "Sign in"),
  );
  replaceChildren(login, form);
  field.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = field.value.trim().replace(/^Bearer\s+/i, "");
      if (token) resolve(token);
    });
  });
}
