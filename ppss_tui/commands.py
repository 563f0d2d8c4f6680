"""ppss's commands in Textual's command palette (ctrl+p): steer a node or the job, jump to a
node or (under a jobs root) a job, open the failed view, retry a failed group, edit control.yaml.
In the failed view the palette offers "Retry failed group ..." for each group."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

JOB_COMMANDS = (
    ("Pause the job", "every node starts nothing new", "screen.set_job_state('paused')"),
    ("Resume the job", "every node runs again", "screen.set_job_state('running')"),
    ("Stop the job", "running items finish, then the workers exit (asks first)", "screen.stop"),
    ("Suspend the job", "freeze every running item (SIGSTOP)", "screen.set_job_state('suspended')"),
    ("Failed items", "grouped by their output; retry a group from there", "screen.failed"),
    ("Retry a failed group", "open the failed view: r there retries the selected group", "screen.failed"),
    ("Edit control.yaml", "the job's and each node's state and slots", "screen.edit"),
    ("Show problem nodes first", "lost, in error or unreachable nodes at the top", "screen.problems_first"),
    ("Filter nodes", "by name or state, e.g. lost", "screen.filter"),
)
NODE_COMMANDS = (("Pause", "paused"), ("Resume", "running"), ("Suspend", "suspended"))


class PpssCommands(Provider):
    """Commands of the main screen; node commands name each node of the job."""

    def _commands(self) -> list[tuple[str, str, str]]:
        from .screens.failed import FailedScreen
        from .screens.main import MainScreen
        if isinstance(self.screen, FailedScreen):
            return [(f"Retry failed group {n + 1}: exit {g.exit}, {g.last_line[-40:] or 'no output'}",
                     f"{g.count} item{'s' * (g.count != 1)} on {g.nodes}: run again", f"screen.retry({n})")
                    for n, g in enumerate(self.screen.groups)]
        if not isinstance(self.screen, MainScreen):
            return []
        out = list(JOB_COMMANDS)
        snap = self.app.snapshot
        for job in snap.jobs if snap else ():
            out.append((f"Go to job {job.name}", f"{job.state}, {100 * job.fraction:.0f}%",
                        f"screen.select_job({job.name!r})"))
        for row in snap.nodes if snap else ():
            name = row.name
            out.append((f"Go to node {name}", f"{row.state}, {row.conn}", f"screen.select_node({name!r})"))
            for verb, state in NODE_COMMANDS:
                out.append((f"{verb} node {name}", f"only {name}",
                            f"screen.set_node_state({state!r}, {name!r})"))
        return out

    async def _run(self, action: str) -> None:
        await self.app.run_action(action)

    async def discover(self) -> Hits:
        from .screens.failed import FailedScreen
        shown = self._commands() if isinstance(self.screen, FailedScreen) else JOB_COMMANDS
        for title, help_text, action in shown:
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action), help=help_text)
