// The teams panel: every team this centre may send, whether it is free, and its current dispatch
// (changing live as the team accepts, arrives and completes).

import { ago, byId, h, metres, words } from "../lib/dom";
import type { DashboardState } from "./state";

export class TeamsPanel {
  private readonly root: HTMLElement;
  private pending = false;

  constructor(
    private readonly state: DashboardState,
    private readonly onSelectAlert: (alertId: string) => void,
  ) {
    this.root = byId("teams-list");
    window.setInterval(() => this.render(), 15_000);
  }

  render(): void {
    if (this.pending) return;
    this.pending = true;
    window.requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private draw(): void {
    const teams = [...this.state.teams.values()].sort((a, b) =>
      a.region === b.region ? a.name.localeCompare(b.name) : a.region.localeCompare(b.region),
    );
    if (!teams.length) {
      this.root.replaceChildren(h("li", { class: "empty" }, "No team reports to this centre."));
      return;
    }
    this.root.replaceChildren(
      ...teams.map((team) => {
        const dispatch = this.state.activeDispatchOf(team.team_id);
        const status = !team.on_duty ? "off_duty" : dispatch ? dispatch.status : "available";
        const alert = dispatch ? this.state.alerts.get(dispatch.alert_id) : undefined;
        return h(
          "li",
          { class: `team-row team-${status}`, "data-team-id": team.team_id, "data-status": status },
          h(
            "div",
            { class: "row-top" },
            h("strong", null, team.name),
            h("span", { class: `badge team-status team-${status}` }, words(status)),
          ),
          h("div", { class: "sub" }, `${team.team_id} · ${team.region} · ${team.capabilities.join(", ")}`),
          dispatch
            ? h(
                "button",
                {
                  type: "button",
                  class: "link dispatch-link",
                  "data-dispatch-id": dispatch.dispatch_id,
                  onclick: () => this.onSelectAlert(dispatch.alert_id),
                },
                `${words(dispatch.kind)}: ${alert?.alert.summary ?? dispatch.summary}`,
                h(
                  "span",
                  { class: "sub" },
                  ` · ${metres(dispatch.distance_m)} · ${words(dispatch.status)} ${ago(dispatch.updated_at)}`,
                ),
              )
            : null,
        );
      }),
    );
  }
}
