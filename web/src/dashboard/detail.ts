// The detail panel of the selected alert: what it is, where, whose, what the sharing agreement
// withheld, its dispatch, the actions this viewer may take, and its lifecycle history.

import { Api, ApiError, uuid4 } from "../lib/api";
import { ago, byId, duration, h, latlon, metres, replaceChildren, stamp, words } from "../lib/dom";
import { distanceM } from "../lib/geo";
import type { AlertView, Dispatch, HistoryEntry, Me, Team } from "../lib/types";
import { ACTIVE_DISPATCH, OPEN_STATUSES } from "../lib/types";
import { attended, type DashboardState } from "./state";

export const REDACTION_LABELS: Record<string, string> = {
  sensor_ids: "sensor identities",
  sensor_sites: "exact sensor sites (position rounded to ~1 km)",
  evidence: "evidence (event ids)",
  owner_agency: "the agencies whose sensors saw it",
  track_ids: "track identities",
  details: "the rule's details",
};

export type ActionName =
  | "acknowledge"
  | "dispatch"
  | "resolve"
  | "false_alarm"
  | "reopen"
  | "cancel_dispatch"
  | "comment";

const ACTION_LABELS: Record<ActionName, string> = {
  acknowledge: "Acknowledge",
  dispatch: "Dispatch…",
  resolve: "Resolve",
  false_alarm: "False alarm",
  reopen: "Reopen",
  cancel_dispatch: "Cancel dispatch",
  comment: "Add note",
};

const ACTION_KEYS: Partial<Record<ActionName, string>> = {
  acknowledge: "A",
  dispatch: "D",
  resolve: "R",
  false_alarm: "F",
};

const DONE: Record<ActionName, string> = {
  acknowledge: "Acknowledged",
  dispatch: "Dispatched",
  resolve: "Resolved",
  false_alarm: "Marked as a false alarm",
  reopen: "Reopened",
  cancel_dispatch: "Dispatch cancelled",
  comment: "Note added",
};

interface ActionAnswer {
  outcome: string;
  action_id: string;
  detail?: string;
  alert?: AlertView;
}

export type Toast = (message: string, kind?: "ok" | "error" | "info") => void;

export class Detail {
  current: string | null = null;
  private busy = false;
  private sections: Record<"head" | "summary" | "access" | "actions" | "facts" | "dispatch" | "history", HTMLElement> | null =
    null;
  private actionsKey: string | null = null;
  private readonly root: HTMLElement;
  private readonly dialog: HTMLDialogElement;

  constructor(
    private readonly state: DashboardState,
    private readonly me: Me,
    private readonly api: Api,
    private readonly toast: Toast,
    private readonly panTo: (lat: number, lon: number) => void,
  ) {
    this.root = byId("detail");
    this.dialog = byId<HTMLDialogElement>("dispatch-dialog");
  }

  show(id: string | null): void {
    this.current = id;
    this.render();
  }

  /** Which actions this viewer may take on the alert now (the server decides; this only hides
   * the buttons it would refuse), and why not when none. */
  allowed(view: AlertView): { actions: ActionName[]; why: string | null } {
    if (this.me.role === "team") return { actions: [], why: "teams answer dispatches in the team view" };
    if (view.access === "shared") {
      return {
        actions: [],
        why: `Shared with your centre under agreement ${view.agreement ?? "?"} for information only: only the countries whose land or sensors it concerns act on it.`,
      };
    }
    if (!view.actionable) return { actions: [], why: "You may not act on this alert." };
    const open = OPEN_STATUSES.includes(view.status);
    const senior = this.me.role === "supervisor" || this.me.role === "admin";
    const actions: ActionName[] = [];
    // An alert Lindero dispatched by itself (critical) is acknowledged with a note: the lifecycle
    // takes "acknowledge" only from "new", and a person's note says someone has seen it.
    if (view.status === "new" || (open && !attended(view))) actions.push("acknowledge");
    if (open) actions.push("dispatch", "resolve", "false_alarm");
    if (!open && senior) actions.push("reopen");
    if (senior && view.status === "dispatched" && view.dispatch && ACTIVE_DISPATCH.includes(view.dispatch.status)) {
      actions.push("cancel_dispatch");
    }
    actions.push("comment");
    return { actions, why: null };
  }

  /** The reason a dispatch would be refused, or null. */
  dispatchBlocked(view: AlertView): string | null {
    if (this.me.role === "admin") return null;
    const land = view.alert.jurisdiction ?? view.alert.owner?.country ?? null;
    if (land && land !== this.me.country) {
      return `It happened in ${land}'s territory: only ${land}'s centres send teams there.`;
    }
    return null;
  }

  render(): void {
    const id = this.current;
    const view = id ? this.state.alerts.get(id) : undefined;
    if (!id || !view) {
      this.sections = null;
      replaceChildren(
        this.root,
        h(
          "div",
          { class: "placeholder" },
          h("p", null, id ? "This alert is no longer visible to you." : "Select an alert in the queue (j / k, or click)."),
        ),
      );
      this.root.removeAttribute("data-alert-id");
      return;
    }
    if (!this.sections || this.root.dataset.alertId !== id) {
      // One skeleton per alert: later renders refill its parts, and rebuild the action buttons
      // only when what they act on changed (a button never vanishes under a pointer).
      const part = (name: string): HTMLElement => h("div", { class: `part part-${name}` });
      this.sections = {
        head: part("head"),
        summary: part("summary"),
        access: part("access"),
        actions: part("actions"),
        facts: part("facts"),
        dispatch: part("dispatch"),
        history: part("history"),
      };
      this.actionsKey = null;
      replaceChildren(this.root, Object.values(this.sections));
      this.root.scrollTop = 0;
    }
    const parts = this.sections;
    this.root.dataset.alertId = id;
    this.root.dataset.version = String(view.version);
    this.root.dataset.status = view.status;
    const alert = view.alert;
    replaceChildren(
      parts.head,
      h(
        "header",
        { class: "detail-head" },
        h("span", { class: `badge sev sev-${alert.severity}` }, alert.severity),
        h("span", { class: "kind" }, words(alert.kind)),
        h("span", { class: `badge status status-${view.status}`, id: "detail-status" }, words(view.status)),
        h("span", { class: "version", title: "state version" }, `v${view.version}`),
      ),
    );
    replaceChildren(parts.summary, h("h2", { id: "detail-summary" }, alert.summary));
    replaceChildren(parts.access, this.access(view));
    const key = `${view.version}|${view.status}|${this.busy}|${view.actionable}`;
    if (key !== this.actionsKey) {
      this.actionsKey = key;
      const oldNote = document.getElementById("action-note") as HTMLInputElement | null;
      const keptNote = oldNote?.value ?? "";
      const noteFocused = oldNote !== null && document.activeElement === oldNote;
      replaceChildren(parts.actions, this.actions(view));
      const note = document.getElementById("action-note") as HTMLInputElement | null;
      if (note && keptNote) note.value = keptNote;
      if (note && noteFocused) note.focus();
    }
    replaceChildren(parts.facts, this.facts(view));
    replaceChildren(parts.dispatch, this.dispatchSection(view));
    replaceChildren(parts.history, this.history(view.history));
  }

  private access(view: AlertView): HTMLElement {
    if (view.access !== "shared") {
      return h("p", { class: "access full", id: "detail-access" }, "Full access: your country's land or sensors.");
    }
    const withheld = view.redacted.map((name) => REDACTION_LABELS[name] ?? words(name));
    return h(
      "div",
      { class: "access shared", id: "detail-access" },
      h("p", null, `Shared under agreement ${view.agreement ?? "?"}.`),
      h(
        "p",
        { id: "detail-redacted" },
        withheld.length
          ? `Withheld by the agreement: ${withheld.join(", ")}; and the partner's dispatch and teams.`
          : "Nothing withheld but the partner's dispatch and teams.",
      ),
    );
  }

  private facts(view: AlertView): HTMLElement {
    const alert = view.alert;
    const withheld = (name: string): string | null =>
      view.redacted.includes(name) ? `withheld (${view.agreement ?? "agreement"})` : null;
    const rows: [string, Node | string][] = [
      ["Raised", `${stamp(alert.time)} (${ago(alert.time)})`],
      ["Updated", `${stamp(alert.updated_at)} · revision ${alert.revision}`],
      ["Position", latlon(alert.lat, alert.lon)],
      ["From the border", metres(alert.border_distance_m)],
      ["Region", alert.region],
      ["Jurisdiction", alert.jurisdiction ?? "outside every outline"],
      [
        "Seen by",
        [alert.owner, ...(alert.contributors ?? [])]
          .filter((o, i, all) => o && all.findIndex((p) => p?.country === o.country && p?.agency === o.agency) === i)
          .map((o) => (o?.agency ? `${o.country} (${o.agency})` : `${o?.country ?? "?"}${withheld("owner_agency") ? " (agency withheld)" : ""}`))
          .join(", "),
      ],
      ["Tracks", this.trackList(view) ?? withheld("track_ids") ?? "none"],
      ["Sensors", (alert.sensor_ids ?? []).join(", ") || withheld("sensor_ids") || "none"],
      ["Evidence", this.evidence(view) ?? withheld("evidence") ?? "none"],
    ];
    const details = Object.entries(alert.details ?? {});
    if (details.length) {
      rows.push([
        "Details",
        h(
          "ul",
          { class: "details" },
          details.map(([key, value]) => h("li", null, `${words(key)}: ${typeof value === "object" ? JSON.stringify(value) : String(value)}`)),
        ),
      ]);
    } else if (withheld("details")) {
      rows.push(["Details", withheld("details")!]);
    }
    return h(
      "dl",
      { class: "facts", id: "detail-facts" },
      rows.flatMap(([name, value]) => [h("dt", null, name), h("dd", null, value)]),
    );
  }

  private trackList(view: AlertView): HTMLElement | null {
    const ids = view.alert.track_ids ?? [];
    if (!ids.length) return null;
    return h(
      "ul",
      { class: "tracks" },
      ids.map((id) => {
        const entry = this.state.tracks.get(id);
        const label = entry
          ? `${id} · ${entry.track.class} · ${entry.track.status} · ${entry.track.speed_mps.toFixed(1)} m/s`
          : `${id} (no longer tracked)`;
        return h(
          "li",
          null,
          entry
            ? h("button", { type: "button", class: "link", onclick: () => this.panTo(entry.track.lat, entry.track.lon) }, label)
            : label,
        );
      }),
    );
  }

  private evidence(view: AlertView): HTMLElement | null {
    const ids = view.alert.evidence ?? [];
    if (!ids.length) return null;
    return h(
      "details",
      null,
      h("summary", null, `${ids.length} event${ids.length === 1 ? "" : "s"}`),
      h("ul", { class: "evidence" }, ids.map((id) => h("li", null, h("code", null, id)))),
    );
  }

  private dispatchSection(view: AlertView): HTMLElement | null {
    const dispatch = view.dispatch;
    const suggested = view.suggested_team ? this.state.teams.get(view.suggested_team) : undefined;
    const parts: Node[] = [];
    if (dispatch) parts.push(this.dispatchCard(dispatch));
    if (view.suggested_team && (!dispatch || !ACTIVE_DISPATCH.includes(dispatch.status))) {
      parts.push(
        h(
          "p",
          { id: "detail-suggested", "data-team-id": view.suggested_team },
          `Suggested team: ${suggested?.name ?? view.suggested_team} (${view.suggested_team})`,
          suggested ? `, ${metres(distanceM(suggested.base, view.alert))} from its base` : "",
        ),
      );
    }
    if (view.teams_offered?.length) parts.push(h("p", null, `Offered so far to: ${view.teams_offered.join(", ")}`));
    if (view.notice) parts.push(h("p", { class: "notice" }, view.notice));
    if (!parts.length) return null;
    return h("section", { class: "dispatch-section", id: "detail-dispatch" }, h("h3", null, "Dispatch"), parts);
  }

  private dispatchCard(dispatch: Dispatch): HTMLElement {
    const team = this.state.teams.get(dispatch.team_id);
    const live = this.state.dispatches.get(dispatch.dispatch_id) ?? dispatch;
    const waiting = live.status === "offered" ? Math.max(0, (Date.parse(live.accept_by) - Date.now()) / 1000) : null;
    return h(
      "div",
      { class: `dispatch-card dispatch-${live.status}`, "data-dispatch-id": live.dispatch_id, "data-status": live.status },
      h(
        "p",
        null,
        h("strong", null, team?.name ?? live.team_id),
        ` (${live.team_id}) · `,
        h("span", { class: `badge dispatch dispatch-${live.status}`, id: "detail-dispatch-status" }, words(live.status)),
      ),
      h(
        "p",
        null,
        `${metres(live.distance_m)} from its base · offered ${ago(live.offered_at)}`,
        waiting !== null ? ` · must accept within ${duration(waiting)}` : "",
        live.escalation ? ` · escalation ${live.escalation}` : "",
      ),
    );
  }

  private history(history: HistoryEntry[]): HTMLElement {
    return h(
      "section",
      { class: "history" },
      h("h3", null, "History"),
      h(
        "ol",
        { id: "detail-history" },
        [...history].reverse().map((entry) =>
          h(
            "li",
            { "data-action": entry.action ?? "raised" },
            h("time", { datetime: entry.time }, stamp(entry.time)),
            " ",
            h("strong", null, entry.action ? words(entry.action) : "correlator"),
            ` → ${words(entry.status)}`,
            entry.actor ? ` · ${actorName(entry)}` : "",
            entry.note ? h("div", { class: "note" }, entry.note) : null,
          ),
        ),
      ),
    );
  }

  private actions(view: AlertView): HTMLElement {
    const { actions, why } = this.allowed(view);
    if (!actions.length) {
      return h("p", { class: "no-actions", id: "detail-no-actions" }, why ?? "No action possible now.");
    }
    const blocked = this.dispatchBlocked(view);
    const note = h("input", {
      type: "text",
      id: "action-note",
      maxlength: 256,
      placeholder: "note for the next action (optional)",
      "aria-label": "Note for the next action",
    });
    return h(
      "section",
      { class: "actions", id: "detail-actions" },
      h(
        "div",
        { class: "buttons" },
        actions.map((action) =>
          h(
            "button",
            {
              type: "button",
              id: `action-${action}`,
              class: action === "acknowledge" || action === "dispatch" ? "primary" : "",
              disabled: this.busy || (action === "dispatch" && blocked !== null),
              title: action === "dispatch" && blocked ? blocked : ACTION_KEYS[action] ? `shortcut: ${ACTION_KEYS[action]}` : null,
              onclick: () => void this.trigger(action),
            },
            ACTION_LABELS[action],
            ACTION_KEYS[action] ? h("kbd", null, ACTION_KEYS[action]!) : null,
          ),
        ),
      ),
      blocked ? h("p", { class: "hint" }, blocked) : null,
      note,
    );
  }

  /** An action from a button or a shortcut. */
  async trigger(action: ActionName): Promise<void> {
    const view = this.current ? this.state.alerts.get(this.current) : undefined;
    if (!view || this.busy) return;
    const { actions } = this.allowed(view);
    if (!actions.includes(action)) {
      this.toast(`Cannot ${words(action)} this alert now (it is ${words(view.status)}).`, "error");
      return;
    }
    if (action === "dispatch") {
      const blocked = this.dispatchBlocked(view);
      if (blocked) {
        this.toast(blocked, "error");
        return;
      }
      this.openDispatch(view);
      return;
    }
    if (action === "comment" && !this.noteText()) {
      this.toast("Write the note first.", "info");
      document.getElementById("action-note")?.focus();
      return;
    }
    if (action === "acknowledge" && view.status !== "new") {
      await this.act(view, "comment", undefined, "acknowledged (Lindero had dispatched it automatically)", "acknowledge");
      return;
    }
    await this.act(view, action);
  }

  private noteText(): string {
    return (document.getElementById("action-note") as HTMLInputElement | null)?.value.trim() ?? "";
  }

  private async act(
    view: AlertView,
    action: ActionName,
    teamId?: string,
    defaultNote?: string,
    shownAs: ActionName = action,
  ): Promise<void> {
    const note = this.noteText() || defaultNote || "";
    this.busy = true;
    this.render();
    const body: Record<string, unknown> = {
      action,
      expected_version: view.version,
      action_id: uuid4(),
    };
    if (note) body.note = note;
    if (teamId) body.team_id = teamId;
    try {
      const answer = await this.api.post<ActionAnswer>(
        `/v1/alerts/${encodeURIComponent(view.alert.alert_id)}/actions`,
        body,
      );
      const field = document.getElementById("action-note") as HTMLInputElement | null;
      if (field) field.value = "";
      if (answer.alert) this.state.applyView(answer.alert);
      if (answer.outcome === "pending") this.toast(`${DONE[shownAs]}: sent, the outcome follows on the live feed.`, "info");
      else this.toast(teamId ? `${DONE[shownAs]}: ${teamId}` : DONE[shownAs], "ok");
    } catch (error) {
      const detail = error instanceof ApiError ? error.detail : String(error);
      const stale = error instanceof ApiError && error.status === 409 && detail.startsWith("stale");
      this.toast(
        stale ? "The alert changed while you looked at it; check it and try again." : `Refused: ${detail}`,
        "error",
      );
    } finally {
      this.busy = false;
      this.render();
    }
  }

  // -- the dispatch dialog ------------------------------------------------------------------------

  /** Teams that may be sent (the alert's land's teams), suggested first, then nearest. */
  candidates(view: AlertView): { team: Team; distance: number; free: boolean; why: string }[] {
    const land = view.alert.jurisdiction ?? view.alert.owner?.country ?? this.me.country;
    const current = view.dispatch && ACTIVE_DISPATCH.includes(view.dispatch.status) ? view.dispatch.team_id : null;
    const out: { team: Team; distance: number; free: boolean; why: string }[] = [];
    for (const team of this.state.teams.values()) {
      if (land && team.country !== land) continue;
      const active = this.state.activeDispatchOf(team.team_id);
      const why = !team.on_duty
        ? "off duty"
        : team.team_id === current
          ? "already dispatched here"
          : active
            ? `busy (${words(active.status)})`
            : "available";
      out.push({ team, distance: distanceM(team.base, view.alert), free: why === "available", why });
    }
    out.sort((a, b) => {
      const rank = (c: (typeof out)[number]): number =>
        (c.team.team_id === view.suggested_team ? 0 : 2) + (c.team.region === view.alert.region ? 0 : 1);
      return rank(a) - rank(b) || a.distance - b.distance;
    });
    return out;
  }

  private openDispatch(view: AlertView): void {
    const options = this.candidates(view);
    const firstFree = options.find((o) => o.free);
    const list = h(
      "div",
      { class: "team-options", role: "radiogroup", "aria-label": "Team to dispatch" },
      options.length
        ? options.map((option, index) =>
            h(
              "label",
              { class: `team-option${option.free ? "" : " unavailable"}`, "data-team-id": option.team.team_id },
              h("input", {
                type: "radio",
                name: "dispatch-team",
                value: option.team.team_id,
                disabled: !option.free,
                checked: option === firstFree,
                id: `dispatch-team-${index}`,
              }),
              h(
                "span",
                { class: "team-option-text" },
                h("strong", null, option.team.name),
                ` (${option.team.team_id})`,
                option.team.team_id === view.suggested_team ? h("span", { class: "badge suggested" }, "suggested") : null,
                h(
                  "span",
                  { class: "sub" },
                  `${metres(option.distance)} · ${option.team.capabilities.join(", ")} · ${option.why}`,
                ),
              ),
            ),
          )
        : h("p", null, "No team of this country is known to this centre."),
    );
    const confirm = h("button", { type: "submit", class: "primary", id: "dispatch-confirm", disabled: !firstFree }, "Dispatch");
    const form = h(
      "form",
      { method: "dialog", id: "dispatch-form" },
      h("h2", null, "Dispatch a team"),
      h("p", { class: "summary" }, view.alert.summary),
      list,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", id: "dispatch-cancel", onclick: () => this.dialog.close("cancel") }, "Cancel"),
        confirm,
      ),
    );
    form.addEventListener("keydown", (event) => {
      // Enter on a team confirms (arrow keys move between teams, Escape cancels)
      if (event.key === "Enter" && (event.target as HTMLElement).matches("input[type=radio]")) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = form.querySelector<HTMLInputElement>("input[name=dispatch-team]:checked")?.value;
      this.dialog.close("dispatch");
      if (chosen) void this.act(view, "dispatch", chosen);
    });
    replaceChildren(this.dialog, form);
    this.dialog.showModal();
    form.querySelector<HTMLInputElement>("input[name=dispatch-team]:checked")?.focus();
  }
}

function actorName(entry: HistoryEntry): string {
  const actor = entry.actor!;
  const where = actor.centre ?? actor.team ?? null;
  return [actor.subject, actor.role !== actor.subject ? actor.role : null, actor.country, where]
    .filter(Boolean)
    .join(" · ");
}
