"""Project and API token records of the Elasticsearch store: `{prefix}-projects` (`_id` = name) and
`{prefix}-tokens` (`_id` = token id, `project` a keyword).

Admin records, not per project themselves. Like recurring tasks, they are rare writes made with
`refresh=true` (so every server's listings see them at once) and read by realtime GET, so a revocation is
seen by the next authentication on every server.
"""

from __future__ import annotations

from tasques.domain.project import ApiToken, Project
from tasques.store.elasticsearch.documents import _project_from, _token_from
from tasques.store.elasticsearch.records import RecordsMixin


class AdminMixin(RecordsMixin):
    """Projects and tokens."""

    async def insert_project(self, project: Project) -> Project:
        return await self._create_small(self.names.projects, project.name, project, f"project {project.name} exists")

    async def get_project(self, name: str) -> Project:
        return await self._get_small(self.names.projects, name, _project_from, f"no project {name}")

    async def update_project(self, project: Project) -> Project:
        return await self._replace_small(self.names.projects, project.name, project, f"project {project.name}")

    async def list_projects(self) -> list[Project]:
        hits = await self._search_all(
            self.names.projects, {"match_all": {}}, [{"name": "asc"}], seq_no_primary_term=True
        )
        parsed = (self._parse(_project_from, "projects", hit) for hit in hits)
        return [p for p in parsed if p is not None]

    async def insert_token(self, token: ApiToken) -> ApiToken:
        return await self._create_small(self.names.tokens, token.id, token, f"token {token.id} exists")

    async def get_token(self, token_id: str) -> ApiToken:
        return await self._get_small(self.names.tokens, token_id, _token_from, f"no token {token_id}")

    async def update_token(self, token: ApiToken) -> ApiToken:
        return await self._replace_small(self.names.tokens, token.id, token, f"token {token.id}")

    async def list_tokens(self, project: str) -> list[ApiToken]:
        hits = await self._search_all(
            self.names.tokens,
            {"term": {"project": project}},
            [{"metadata.created_at": "asc"}, {"id": "asc"}],
            seq_no_primary_term=True,
        )
        parsed = (self._parse(_token_from, "tokens", hit) for hit in hits)
        return [t for t in parsed if t is not None]
