"""ppss's commands in Textual's command palette (ctrl+p): steer a node or the job, jump to a
node, open the failed view, retry a failed group, edit control.yaml."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

JOB_COMMANDS = (
    ("Pause the job", "every node starts nothing new", "screen.set_job_state('paused')"),
    ("Resume the job", "every node runs again", "screen.set_job_state('running')"),
    ("Stop the job", "running items finish, then the workers exit (asks first)", "screen.stop"),
    ("Suspend the job", "freeze every running item (SIGSTOP)", "screen.set_job_state('suspended')"),
    ("Failed items", "grouped by their output; retry a group from there", "screen.failed"),
    ("Retry failed items", "open the failed view to retry a group (R there)", "screen.failed"),
    ("Edit control.yaml", "the job's and each node's state and slots", "screen.edit"),
    ("Show problem nodes first", "lost, in error or unreachable nodes at the top", "screen.problems_first"),
    ("Filter nodes", "by name or state, e.g. lost", "screen.filter"),
)
NODE_COMMANDS = (("Pause", "paused"), ("Resume", "running"), ("Suspend", "suspended"))


class PpssCommands(Provider):
    """Commands of the main screen; node commands name each node of the job."""

    def _commands(self) -> list[tuple[str, str, str]]:
        from .screens.main import MainScreen
        if not isinstance(self.screen, MainScreen):
            return []
        out = list(JOB_COMMANDS)
        snap = self.app.snapshot
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
        for title, help_text, action in JOB_COMMANDS:
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action), help=help_text)
