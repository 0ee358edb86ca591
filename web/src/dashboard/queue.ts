// The alert queue: open alerts first by severity (critical on top), then newest first; filters by
// region, kind, severity and status, and a text search. The list is a listbox: j/k or the arrow
// keys move the selection, Enter opens it on the map (see main.ts for the other shortcuts).

import { ago, byId, h, replaceChildren, words } from "../lib/dom";
import type { AlertStatus, AlertView, Severity } from "../lib/types";
import { ALERT_STATUSES, OPEN_STATUSES, SEVERITIES, SEVERITY_RANK } from "../lib/types";
import type { DashboardState } from "./state";

export interface Filters {
  region: string;
  kind: string;
  severity: Severity;
  status: "open" | "all" | AlertStatus;
  text: string;
}

export function compareAlerts(a: AlertView, b: AlertView): number {
  const severity = SEVERITY_RANK[b.alert.severity] - SEVERITY_RANK[a.alert.severity];
  if (severity !== 0) return severity;
  const time = Date.parse(b.alert.time) - Date.parse(a.alert.time);
  if (time !== 0) return time;
  return a.alert.alert_id < b.alert.alert_id ? -1 : 1;
}

export class Queue {
  filters: Filters = { region: "", kind: "", severity: "info", status: "open", text: "" };
  selected: string | null = null;
  private order: string[] = [];
  private pending = false;
  private readonly list: HTMLUListElement;
  private readonly count: HTMLElement;
  private readonly kindSelect: HTMLSelectElement;
  private kinds = new Set<string>();

  constructor(
    private readonly state: DashboardState,
    regions: { id: string; name: string }[],
    private readonly onSelect: (id: string | null, pan: boolean) => void,
  ) {
    this.list = byId<HTMLUListElement>("queue-list");
    this.count = byId("queue-count");
    const regionSelect = byId<HTMLSelectElement>("filter-region");
    replaceChildren(
      regionSelect,
      h("option", { value: "" }, "all regions"),
      regions.map((r) => h("option", { value: r.id }, r.name)),
    );
    this.kindSelect = byId<HTMLSelectElement>("filter-kind");
    const severitySelect = byId<HTMLSelectElement>("filter-severity");
    replaceChildren(
      severitySelect,
      SEVERITIES.map((s) => h("option", { value: s }, s === "info" ? "any severity" : `${s} or worse`)),
    );
    const statusSelect = byId<HTMLSelectElement>("filter-status");
    replaceChildren(
      statusSelect,
      h("option", { value: "open", title: "new, acknowledged or dispatched" }, "open alerts"),
      h("option", { value: "all" }, "every status"),
      ALERT_STATUSES.map((s) => h("option", { value: s }, `only ${words(s)}`)),
    );
    const text = byId<HTMLInputElement>("filter-text");
    const changed = (): void => {
      this.filters = {
        region: regionSelect.value,
        kind: this.kindSelect.value,
        severity: severitySelect.value as Severity,
        status: statusSelect.value as Filters["status"],
        text: text.value.trim().toLowerCase(),
      };
      this.render();
    };
    for (const element of [regionSelect, this.kindSelect, severitySelect, statusSelect]) {
      element.addEventListener("change", changed);
    }
    text.addEventListener("input", changed);
    this.updateKinds();
    this.list.addEventListener("click", (event) => {
      const row = (event.target as HTMLElement).closest<HTMLElement>("[data-alert-id]");
      if (row?.dataset.alertId) {
        this.list.focus();
        this.select(row.dataset.alertId, true);
      }
    });
    window.setInterval(() => this.render(), 15_000);
  }

  private updateKinds(): void {
    let grew = false;
    for (const view of this.state.alerts.values()) {
      if (!this.kinds.has(view.alert.kind)) {
        this.kinds.add(view.alert.kind);
        grew = true;
      }
    }
    if (!grew && this.kindSelect.options.length > 0) return;
    const current = this.kindSelect.value;
    replaceChildren(
      this.kindSelect,
      h("option", { value: "" }, "every kind"),
      [...this.kinds].sort().map((k) => h("option", { value: k }, words(k))),
    );
    this.kindSelect.value = current;
  }

  matches(view: AlertView): boolean {
    const f = this.filters;
    const alert = view.alert;
    if (f.region && alert.region !== f.region) return false;
    if (f.kind && alert.kind !== f.kind) return false;
    if (SEVERITY_RANK[alert.severity] < SEVERITY_RANK[f.severity]) return false;
    if (f.status === "open" && !OPEN_STATUSES.includes(view.status)) return false;
    if (f.status !== "open" && f.status !== "all" && view.status !== f.status) return false;
    if (f.text) {
      const haystack = `${alert.alert_id} ${alert.kind} ${alert.summary} ${alert.region}`.toLowerCase();
      if (!haystack.includes(f.text)) return false;
    }
    return true;
  }

  visible(): AlertView[] {
    return [...this.state.alerts.values()].filter((v) => this.matches(v)).sort(compareAlerts);
  }

  /** Re-render at the next animation frame (many changes in one frame render once). */
  render(): void {
    if (this.pending) return;
    this.pending = true;
    window.requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private draw(): void {
    this.updateKinds();
    const views = this.visible();
    this.order = views.map((v) => v.alert.alert_id);
    const now = Date.now();
    const rows = views.map((view) => this.row(view, now));
    this.list.replaceChildren(...rows);
    if (views.length === 0) {
      this.list.append(
        h(
          "li",
          { class: "empty" },
          this.state.alerts.size === 0 ? "No alerts yet. They appear here the moment they are raised." : "No alert matches the filters.",
        ),
      );
    }
    const fresh = views.filter((v) => v.status === "new").length;
    this.count.textContent = `${views.length} shown · ${fresh} new · ${this.state.alerts.size} known`;
    if (this.selected) {
      this.list.setAttribute("aria-activedescendant", `row-${cssId(this.selected)}`);
      const row = this.list.querySelector<HTMLElement>(`[data-alert-id="${CSS.escape(this.selected)}"]`);
      row?.scrollIntoView({ block: "nearest" });
    } else {
      this.list.removeAttribute("aria-activedescendant");
    }
  }

  private row(view: AlertView, now: number): HTMLLIElement {
    const alert = view.alert;
    const id = alert.alert_id;
    const dispatch = view.dispatch;
    const selected = id === this.selected;
    return h(
      "li",
      {
        id: `row-${cssId(id)}`,
        role: "option",
        "aria-selected": selected ? "true" : "false",
        class: `alert-row sev-${alert.severity} status-${view.status}${selected ? " selected" : ""}`,
        "data-alert-id": id,
        "data-severity": alert.severity,
        "data-status": view.status,
      },
      h(
        "div",
        { class: "row-top" },
        h("span", { class: `badge sev sev-${alert.severity}` }, alert.severity),
        h("span", { class: "kind" }, words(alert.kind)),
        h("time", { class: "when", datetime: alert.time, title: alert.time }, ago(alert.time, now)),
      ),
      h("div", { class: "summary" }, alert.summary),
      h(
        "div",
        { class: "row-bottom" },
        h("span", { class: `badge status status-${view.status}` }, words(view.status)),
        dispatch
          ? h("span", { class: `badge dispatch dispatch-${dispatch.status}` }, `${dispatch.team_id}: ${words(dispatch.status)}`)
          : null,
        view.access === "shared" ? h("span", { class: "badge shared", title: `shared under ${view.agreement}` }, "shared") : null,
        h("span", { class: "region" }, alert.region),
      ),
    );
  }

  select(id: string | null, pan: boolean): void {
    this.selected = id;
    this.render();
    this.onSelect(id, pan);
  }

  /** Move the selection by `delta` rows (clamped); with nothing selected, select the first. */
  move(delta: number): void {
    if (this.order.length === 0) return;
    const index = this.selected ? this.order.indexOf(this.selected) : -1;
    const next = index < 0 ? 0 : Math.max(0, Math.min(this.order.length - 1, index + delta));
    this.select(this.order[next] ?? null, true);
  }

  first(): void {
    if (this.order[0]) this.select(this.order[0], true);
  }

  last(): void {
    const id = this.order[this.order.length - 1];
    if (id) this.select(id, true);
  }
}

function cssId(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, "_");
}
