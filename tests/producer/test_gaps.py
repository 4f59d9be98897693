from producer.gaps import TradeIdTracker


def test_consecutive_ids_are_new_and_repeats_are_duplicates() -> None:
    tracker = TradeIdTracker()
    assert [tracker.accept(i) for i in (5, 6, 7)] == [True, True, True]
    assert tracker.accept(6) is False
    assert tracker.accept(7) is False
    assert (tracker.last, tracker.missing) == (7, [])


def test_a_jump_opens_a_gap_that_backfill_closes_once() -> None:
    tracker = TradeIdTracker()
    tracker.accept(10)
    assert tracker.accept(15) is True
    assert tracker.missing == [(11, 14)]
    assert tracker.missing_count == 4
    assert tracker.accept(12) is True
    assert tracker.missing == [(11, 11), (13, 14)]
    assert tracker.accept(12) is False  # backfill overlap
    for trade_id in (11, 13, 14):
        assert tracker.accept(trade_id) is True
    assert tracker.missing == []
    assert tracker.accept(9) is False  # before our first trade: not ours to publish


def test_several_gaps_stay_sorted() -> None:
    tracker = TradeIdTracker()
    for trade_id in (1, 4, 9):
        tracker.accept(trade_id)
    assert tracker.missing == [(2, 3), (5, 8)]
    assert tracker.accept(6) is True
    assert tracker.missing == [(2, 3), (5, 5), (7, 8)]


def test_heartbeat_ahead_of_us_is_a_gap_including_its_id() -> None:
    tracker = TradeIdTracker()
    assert tracker.observe_latest(100) is False  # first sight: nothing before is ours
    assert tracker.last == 100
    assert tracker.accept(101) is True
    assert tracker.observe_latest(101) is False
    assert tracker.observe_latest(104) is True
    assert tracker.missing == [(102, 104)]
    assert tracker.accept(104) is True  # the match arrives late, or from REST
    assert tracker.missing == [(102, 103)]


def test_abandon_drops_only_the_named_ids() -> None:
    tracker = TradeIdTracker()
    tracker.accept(1)
    tracker.accept(20)
    assert tracker.abandon(5, 9) == 5
    assert tracker.missing == [(2, 4), (10, 19)]
    assert tracker.abandon(100, 200) == 0
