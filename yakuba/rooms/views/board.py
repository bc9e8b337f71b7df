"""The floor board (フロア利用状況): every room of a floor as a card, kept live by the
floor's real-time topic (frontend/src/board.ts refetches the fragment on each event)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from yakuba.lib import clock
from yakuba.rooms import events, occupancy
from yakuba.rooms.access import access_rooms


def _floor_id(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _board_context(floor_id: int) -> dict[str, object]:
    found = occupancy.floor_rooms(floor_id)
    if found is None:
        raise Http404(gettext("フロアが見つかりません。"))
    floor, rooms = found
    now = clock.now()
    return {
        "floor": floor,
        "states": occupancy.room_states(rooms, now),
        "updated_at": now,
        "fragment_query": f"floor={floor.pk}",
    }


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    access_rooms(request.user)
    floors = occupancy.floors()
    buildings = {floor.building_id: floor.building for floor in floors}
    chosen = _floor_id(request.GET.get("floor"))
    building_id = _floor_id(request.GET.get("building"))
    if chosen is None or not any(floor.pk == chosen for floor in floors):
        candidates = [f for f in floors if building_id is None or f.building_id == building_id]
        chosen = candidates[0].pk if candidates else None
    context: dict[str, object] = {
        "active_nav": "rooms",
        "floors": floors,
        "buildings": list(buildings.values()),
        "chosen_floor_id": chosen,
        "realtime_topics": events.floor_topic(chosen) if chosen is not None else "",
    }
    if chosen is not None:
        context.update(_board_context(chosen))
    return render(request, "rooms/board/board.html", context)


@login_required
@require_GET
def board_fragment(request: HttpRequest) -> HttpResponse:
    access_rooms(request.user)
    floor_id = _floor_id(request.GET.get("floor"))
    if floor_id is None:
        return HttpResponse(
            gettext("フロアを指定してください。"),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    return render(request, "rooms/board/fragment.html", _board_context(floor_id))


urlpatterns: list[URLPattern] = [
    path("board/", board, name="board"),
    path("board/fragment/", board_fragment, name="board_fragment"),
]
