"""Pilot tests: the serial log keeps showing its tail while it follows (lines arriving while it is hidden
behind another tab or screen, a resize, a drain landing right after it is shown again), and a user who
scrolled up on purpose is never yanked back down.

Lines are fed to the app's LogBuffer and drained by hand, so each test decides exactly which drain lands
where (the pane's own 10 Hz drain timer only ever finds an empty buffer)."""

from __future__ import annotations

from pathlib import Path

from bkbench.tui.app import BkBenchApp
from bkbench.tui.widgets.seriallog import LogLine, SerialLog
from test_tui_app import sync
from textual.app import App, ComposeResult
from textual.screen import Screen


def make_app(tmp_path: Path) -> BkBenchApp:
    return BkBenchApp(url="", data_dir=tmp_path, ports_source=lambda: [], monitor=False, poll_ports=0)


def feed(app: BkBenchApp, start: int, count: int) -> None:
    """One burst of `count` lines, drained at once (one timer tick's worth)."""
    app.log_buffer.feed(b"".join(f"line {i:04d}\r\n".encode() for i in range(start, start + count)))
    app.log_pane.drain()


def shown(view: SerialLog) -> list[str]:
    """The log lines drawn on screen now (the timestamp column cut off)."""
    rows = [view.render_line(y).text for y in range(view.scrollable_content_region.height)]
    return [row.split(" ", 1)[1].rstrip() for row in rows if row.strip()]


def tail_shown(view: SerialLog) -> bool:
    return bool(view.lines) and view.lines[-1].text in shown(view)


async def hide_and_show(app: BkBenchApp, pilot, how: str, during) -> None:
    """Hide the log (narrow: another tab; any size: a screen on top), run `during`, show it again."""
    if how == "tab":
        await pilot.press("3")
    else:
        await app.push_screen(Screen())
    await pilot.pause(0.05)
    await during()
    if how == "tab":
        await pilot.press("2")
    else:
        app.pop_screen()
    await pilot.pause(0.05)


async def few_lines_then_bursts_while_hidden(app: BkBenchApp, pilot, how: str) -> None:
    """The flaky tmux run: a few lines shown (no scrollbar yet), the log hidden by the firmware picker or
    the Operation tab, the chip's boot log arriving over several drains, then the log shown again."""
    await pilot.press("2", "ctrl+l")
    feed(app, 0, 3)
    await pilot.pause(0.05)
    view = app.log_pane.log_view
    assert tail_shown(view) and view.max_scroll_y == 0

    async def bursts() -> None:
        for n in range(4):  # one burst per drain tick, with screen refreshes between them
            feed(app, 3 + 50 * n, 50)
            await pilot.pause(0.05)

    await hide_and_show(app, pilot, how, bursts)
    assert view.lines[-1].text == "line 0202"
    assert tail_shown(view), (how, shown(view))
    assert view.scroll_y == view.max_scroll_y > 0
    feed(app, 203, 40)  # a drain landing straight after the log is shown again still follows
    await pilot.pause(0.05)
    assert tail_shown(view), (how, shown(view))


@sync
async def test_narrow_log_follows_through_tab_switches_and_screens(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        # the log hidden before it had any line: no scrollbar, no scroll position to speak of
        await pilot.press("4")
        await pilot.pause(0.05)
        view = app.log_pane.log_view
        feed(app, 0, 164)
        await pilot.pause(0.05)
        feed(app, 164, 10)
        await pilot.pause(0.05)
        await pilot.press("2")
        feed(app, 174, 5)  # before the log had a refresh at its new size
        await pilot.pause(0.05)
        assert tail_shown(view), shown(view)
        for n in range(3):  # and every tick after
            feed(app, 179 + n, 1)
            await pilot.pause(0.02)
            assert tail_shown(view), shown(view)
        await few_lines_then_bursts_while_hidden(app, pilot, "tab")
        await few_lines_then_bursts_while_hidden(app, pilot, "screen")


@sync
async def test_wide_log_follows_past_a_screen_and_resizes(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await few_lines_then_bursts_while_hidden(app, pilot, "screen")
        view = app.log_pane.log_view
        for size in ((80, 24), (120, 36), (100, 30), (80, 24)):
            await pilot.resize_terminal(*size)
            feed(app, len(view.lines), 60)  # lands before or after the new layout: either way
            await pilot.pause(0.1)
            await pilot.press("2")
            await pilot.pause(0.05)
            assert tail_shown(view), (size, shown(view))


@sync
async def test_scrolled_up_on_purpose_stays_put_until_end(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")  # also focuses the log
        feed(app, 0, 200)
        await pilot.pause(0.05)
        view = app.log_pane.log_view
        assert tail_shown(view)
        await pilot.press("pageup", "up")
        await pilot.pause(0.05)
        top = shown(view)[0]
        assert not tail_shown(view)
        feed(app, 200, 100)  # new lines do not move the view
        await pilot.pause(0.05)
        assert shown(view)[0] == top
        await pilot.press("3")  # nor does a tab switch with lines arriving meanwhile
        await pilot.pause(0.05)
        feed(app, 300, 30)
        await pilot.pause(0.05)
        feed(app, 330, 30)
        await pilot.press("2")
        await pilot.pause(0.05)
        assert shown(view)[0] == top
        await app.push_screen(Screen())  # nor a screen on top
        await pilot.pause(0.05)
        feed(app, 360, 30)
        await pilot.pause(0.05)
        feed(app, 375, 15)
        app.pop_screen()
        await pilot.pause(0.05)
        assert shown(view)[0] == top and not tail_shown(view)
        await pilot.resize_terminal(120, 36)  # nor a resize (the log gets taller: fewer lines above)
        await pilot.pause(0.1)
        assert shown(view)[0] == top and not tail_shown(view)
        view.focus()
        await pilot.press("end")  # back at the tail: following again
        await pilot.pause(0.05)
        feed(app, 390, 50)
        await pilot.pause(0.05)
        assert tail_shown(view), shown(view)


class OneLog(App[None]):
    def compose(self) -> ComposeResult:
        yield SerialLog(max_lines=100, show_time=False)


def lines(start: int, count: int) -> list[LogLine]:
    return [LogLine(i, 0.0, f"line {i:04d}", b"") for i in range(start, start + count)]


@sync
async def test_lines_falling_off_the_top_do_not_move_a_reader():
    """At the line limit the oldest lines go: a user reading the middle keeps seeing the same lines."""
    app = OneLog()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(SerialLog)
        view.focus()
        view.add_lines(lines(0, 100))
        await pilot.pause(0.05)
        assert view.lines[-1].text in shown_plain(view)
        await pilot.press("pageup")
        await pilot.pause(0.05)
        before = shown_plain(view)
        view.add_lines(lines(100, 30))  # 30 fall off the top
        await pilot.pause(0.05)
        assert view.lines[0].text == "line 0030"
        assert shown_plain(view) == before
        await pilot.press("end")
        view.add_lines(lines(130, 5))
        await pilot.pause(0.05)
        assert shown_plain(view)[-1] == "line 0134"
        await pilot.press("home")
        view.clear()  # scrolled up, then cleared: nothing above to read, so the next lines are followed
        view.add_lines(lines(135, 60))
        await pilot.pause(0.05)
        assert shown_plain(view)[-1] == "line 0194"


def shown_plain(view: SerialLog) -> list[str]:
    rows = [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]
    return [row for row in rows if row]


@sync
async def test_a_log_that_stops_following_says_so_and_a_sideways_scroll_keeps_following(tmp_path: Path):
    """Issue 22: the log stopped following without a word. A sideways scroll (keys, a horizontal wheel)
    keeps the tail; a scroll up stops following and the status line says so, with the lines below."""
    from textual import events

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        app.log_buffer.feed(b"".join(b"line %04d " % i + b"x" * 150 + b"\r\n" for i in range(100)))
        app.log_pane.drain()
        await pilot.pause(0.1)
        view = app.log_pane.log_view

        def status() -> str:
            return str(app.log_pane.query_one("#log-status").render())

        await pilot.press("right", "right")
        view.post_message(events.MouseScrollRight(view, 5, 5, 0, 0, 0, False, False, False))
        await pilot.pause(0.3)
        feed(app, 100, 5)
        await pilot.pause(0.1)
        assert view.scroll_x > 0 and view.following and "NOT FOLLOWING" not in status()
        assert view.scroll_y == view.max_scroll_y  # the newest line is the bottom one
        await pilot.press("up")
        await pilot.pause(0.1)
        assert not view.following and "NOT FOLLOWING (1 below): End follows" in status()
        feed(app, 105, 10)
        await pilot.pause(0.1)
        assert "NOT FOLLOWING (11 below)" in status()
        await pilot.press("end")
        await pilot.pause(0.1)
        assert view.following and "NOT FOLLOWING" not in status()
