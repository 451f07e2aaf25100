"""API Gateway HTTP API route matching: `{param}` segments, a greedy `{proxy+}` tail, `ANY` methods.

HTTP APIs pick the most specific route: literal segments beat `{param}` segments, which beat a greedy
`{proxy+}`. A path that matches no route *for its method* is a 404, not a 405, exactly like API Gateway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from infra.catalog import FunctionSpec, Route

# Segment kinds, ordered by how specific they are (lower wins when two routes match one path).
_LITERAL, _PARAM, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class _Segment:
    kind: int
    text: str  # the literal text, or the parameter's name


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    function: FunctionSpec
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    function: FunctionSpec
    segments: tuple[_Segment, ...]

    def match(self, parts: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.kind == _GREEDY:
                rest = parts[index:]
                # `{proxy+}` needs at least one non-empty segment, as in API Gateway.
                if not rest or not rest[0]:
                    return None
                params[segment.text] = unquote("/".join(rest))
                return params
            if index >= len(parts):
                return None
            part = parts[index]
            if segment.kind == _LITERAL:
                if part != segment.text:
                    return None
            elif not part:
                return None
            else:
                params[segment.text] = unquote(part)
        return params if len(parts) == len(self.segments) else None

    @property
    def specificity(self) -> tuple[int, ...]:
        return tuple(segment.kind for segment in self.segments)


def _compile(path: str) -> tuple[_Segment, ...]:
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/': {path!r}")
    segments = []
    parts = path[1:].split("/")
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                if index != len(parts) - 1:
                    raise ValueError(f"a greedy parameter must be the last segment: {path!r}")
                segments.append(_Segment(_GREEDY, name[:-1]))
            else:
                segments.append(_Segment(_PARAM, name))
        elif "{" in part or "}" in part:
            raise ValueError(f"a path parameter must be a whole segment: {path!r}")
        else:
            segments.append(_Segment(_LITERAL, part))
    return tuple(segments)


class RouteTable:
    """The routes of one HTTP API, compiled once."""

    def __init__(self, routes: Iterable[tuple[Route, FunctionSpec]]) -> None:
        self._routes: list[_CompiledRoute] = []
        seen: set[str] = set()
        for route, function in routes:
            key = f"{route.method.upper()} {route.path}"
            if key in seen:
                raise ValueError(f"route {key} is declared twice")
            seen.add(key)
            self._routes.append(_CompiledRoute(route, function, _compile(route.path)))

    @property
    def routes(self) -> list[tuple[Route, FunctionSpec]]:
        return [(compiled.route, compiled.function) for compiled in self._routes]

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The most specific route for `method` and the (still percent-encoded) `path`, or None."""
        if not path.startswith("/"):
            return None
        parts = path[1:].split("/")
        best: tuple[tuple[int, ...], _CompiledRoute, dict[str, str]] | None = None
        for compiled in self._routes:
            route_method = compiled.route.method.upper()
            if route_method not in (method.upper(), "ANY"):
                continue
            params = compiled.match(parts)
            if params is None:
                continue
            # An explicit method beats ANY on an otherwise equal path.
            rank = (*compiled.specificity, 1 if route_method == "ANY" else 0)
            if best is None or rank < best[0]:
                best = (rank, compiled, params)
        if best is None:
            return None
        return RouteMatch(best[1].route, best[1].function, best[2])

    def function_for_path(self, path: str) -> FunctionSpec | None:
        """The function serving `path` by any method, or None."""
        parts = path[1:].split("/") if path.startswith("/") else []
        return next((compiled.function for compiled in self._routes if compiled.match(parts) is not None), None)

    def path_exists(self, path: str) -> bool:
        """Whether any route, of any method, serves `path` (CORS preflights are answered for those)."""
        parts = path[1:].split("/") if path.startswith("/") else []
        return any(compiled.match(parts) is not None for compiled in self._routes)
