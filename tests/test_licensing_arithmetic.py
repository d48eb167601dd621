"""Exact calendar and money arithmetic of licensing (T-02, T-04, T-07), with hypothesis properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verdigris.licensing import dates, money, pricing

MSK = dates.zone("Europe/Moscow")  # UTC+3, no DST
NY = dates.zone("America/New_York")  # DST
UTC_Z = dates.zone("UTC")


def ms(*args: int, tz: object = UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)  # type: ignore[arg-type]


# --- T-02: the license starts the day after conclusion, in the operator's time zone ---------------


def test_day_after_conclusion_uses_the_operator_zone() -> None:
    # 22:30 UTC on 31 December is already 1 January 01:30 in Moscow: the license starts 2 January.
    assert dates.start_after_conclusion(ms(2026, 12, 31, 22, 30), MSK) == date(2027, 1, 2)
    # The same instant in UTC is still 31 December: it starts 1 January.
    assert dates.start_after_conclusion(ms(2026, 12, 31, 22, 30), UTC_Z) == date(2027, 1, 1)
    # One millisecond before local midnight vs. local midnight itself.
    midnight_msk = dates.day_start_ms(date(2027, 3, 10), MSK)
    assert dates.start_after_conclusion(midnight_msk - 1, MSK) == date(2027, 3, 10)
    assert dates.start_after_conclusion(midnight_msk, MSK) == date(2027, 3, 11)


def test_leap_day_and_year_end() -> None:
    assert dates.start_after_conclusion(ms(2028, 2, 28, 12), UTC_Z) == date(2028, 2, 29)
    assert dates.start_after_conclusion(ms(2027, 2, 28, 12), UTC_Z) == date(2027, 3, 1)
    assert dates.start_after_conclusion(ms(2027, 12, 31, 23, 59, 59), UTC_Z) == date(2028, 1, 1)


def test_day_start_in_a_dst_zone() -> None:
    # New York: 8 March 2026 is the spring-forward day (23 hours); 1 November is 25 hours.
    spring = dates.day_start_ms(date(2026, 3, 9), NY) - dates.day_start_ms(date(2026, 3, 8), NY)
    autumn = dates.day_start_ms(date(2026, 11, 2), NY) - dates.day_start_ms(date(2026, 11, 1), NY)
    assert spring == 23 * 3600 * 1000
    assert autumn == 25 * 3600 * 1000
    assert dates.day_start_ms(date(2026, 7, 1), NY) == ms(2026, 7, 1, 4)


def test_month_periods_keep_the_day_or_run_to_the_next_first() -> None:
    assert dates.add_months(date(2026, 1, 15), 1) == date(2026, 2, 15)
    assert dates.add_months(date(2026, 1, 31), 1) == date(2026, 3, 1)  # no 31 February
    assert dates.add_months(date(2028, 1, 29), 1) == date(2028, 2, 29)  # leap year
    assert dates.add_months(date(2027, 1, 29), 1) == date(2027, 3, 1)  # common year
    assert dates.add_months(date(2026, 3, 31), 1) == date(2026, 5, 1)  # no 31 April
    assert dates.add_months(date(2026, 12, 31), 12) == date(2027, 12, 31)
    assert dates.add_months(date(2028, 2, 29), 12) == date(2029, 3, 1)
    assert dates.period_end(date(2026, 5, 5), "day", 30) == date(2026, 6, 4)
    with pytest.raises(ValueError):
        dates.period_end(date(2026, 5, 5), "week", 1)


def test_quota_month_is_the_local_month() -> None:
    # 30 June 22:00 UTC is 1 July 01:00 in Moscow: the July counters apply.
    assert dates.month_key(ms(2026, 6, 30, 22), MSK) == "2026-07"
    assert dates.month_key(ms(2026, 6, 30, 22), UTC_Z) == "2026-06"
    assert dates.next_month_start_ms(ms(2026, 12, 15), MSK) == ms(2026, 12, 31, 21)


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31)), st.integers(0, 36))
def test_add_months_properties(start: date, months: int) -> None:
    end = dates.add_months(start, months)
    # Never shorter than the calendar months, never more than three days longer.
    index = start.year * 12 + start.month - 1 + months
    target_first = date(index // 12, index % 12 + 1, 1)
    assert end >= start
    if start.day <= 28:
        assert end == target_first.replace(day=start.day)
    else:
        assert target_first <= end <= target_first + timedelta(days=31)
        assert end.day == start.day or end.day == 1
    # Later starts never end earlier.
    assert dates.add_months(start + timedelta(days=1), months) >= end


@settings(max_examples=300)
@given(
    st.integers(ms(2000, 1, 1), ms(2100, 1, 1)),
    st.sampled_from(["UTC", "Europe/Moscow", "America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati"]),
)
def test_start_is_the_next_local_midnight_property(at_ms: int, zone_name: str) -> None:
    tz = dates.zone(zone_name)
    start = dates.start_after_conclusion(at_ms, tz)
    start_ms = dates.day_start_ms(start, tz)
    # The license begins after the conclusion, within one local day (and at most 26 hours).
    assert at_ms < start_ms <= at_ms + 26 * 3600 * 1000
    assert dates.local_date(start_ms, tz) == start
    assert dates.local_date(at_ms, tz) == start - dates.DAY


# --- money --------------------------------------------------------------------------------------------


def test_money_parsing_refuses_floats_and_extra_decimals() -> None:
    assert money.parse("12.50", "USD") == Decimal("12.50")
    assert money.parse(12, "USD") == Decimal(12)
    with pytest.raises(money.MoneyError):
        money.parse(12.5, "USD")
    with pytest.raises(money.MoneyError):
        money.parse("12.505", "USD")
    with pytest.raises(money.MoneyError):
        money.parse("12.5", "JPY")
    with pytest.raises(money.MoneyError):
        money.parse("-1", "USD")
    with pytest.raises(money.MoneyError):
        money.parse("NaN", "USD")
    assert money.round_money(Decimal("0.005"), "USD") == Decimal("0.01")  # ROUND_HALF_UP
    assert money.round_money(Decimal("2.675"), "USD") == Decimal("2.68")
    assert money.text(Decimal("1.5"), "KWD") == "1.500"


# --- T-07: stacked loyalty rules ----------------------------------------------------------------------


def rule(id: int, kind: str, value: str = "0", **kw: object) -> pricing.Rule:
    return pricing.Rule(id=id, name=f"r{id}", kind=kind, value=Decimal(value), **kw)  # type: ignore[arg-type]


def test_stacked_discounts_compound_in_priority_order() -> None:
    rules = [
        rule(1, "percent", "10", priority=10),
        rule(2, "fixed", "1.99", priority=20),
        rule(3, "percent", "15", promo_code="SPRING", priority=30),
        rule(4, "volume", tiers=((3, Decimal("5")), (10, Decimal("12"))), priority=40),
        rule(5, "bonus_days", "7", promo_code="spring", priority=50),
        rule(6, "percent", "20", effect=pricing.MARKUP, tariff_code="other"),
    ]
    lines = [pricing.LineIn("pro", Decimal("29.00"), 1), pricing.LineIn("pro", Decimal("29.00"), 2)]
    priced = pricing.price_lines(lines, rules, "USD", promo_code="Spring")
    one, two = priced
    # Line 1: 29.00 -10% = -2.90 -> 26.10; -1.99 -> 24.11; -15% = -3.6165 -> -3.62 -> 20.49;
    # volume (3 units on the invoice -> 5%) = -1.0245 -> -1.02 -> 19.47; +7 bonus days.
    assert [a.amount for a in one.adjustments] == [
        Decimal("-2.90"),
        Decimal("-1.99"),
        Decimal("-3.62"),
        Decimal("-1.02"),
        Decimal("0"),
    ]
    assert [a.rule_id for a in one.adjustments] == [1, 2, 3, 4, 5]
    assert one.amount == Decimal("19.47") and one.bonus_days == 7
    # Line 2: base 58.00 -5.80 -> 52.20; fixed per unit 2 x 1.99 = -3.98 -> 48.22; -7.233 -> -7.23
    # -> 40.99; -5% = -2.0495 -> -2.05 -> 38.94.
    assert two.base == Decimal("58.00") and two.amount == Decimal("38.94")
    # The markup rule is for another tariff and did not touch either line.
    assert all(a.rule_id != 6 for p in priced for a in p.adjustments)
    # Without the promo code the promo rules do not apply.
    plain = pricing.price_lines(lines[:1], rules, "USD")[0]
    assert [a.rule_id for a in plain.adjustments] == [1, 2]
    assert plain.amount == Decimal("24.11")


def test_discount_never_goes_below_zero_and_markup_adds() -> None:
    priced = pricing.price_lines(
        [pricing.LineIn("t", Decimal("5.00"))],
        [rule(1, "fixed", "7.00"), rule(2, "percent", "10", effect=pricing.MARKUP)],
        "USD",
    )[0]
    assert priced.amount == Decimal("0.00")
    assert [a.amount for a in priced.adjustments] == [Decimal("-5.00")]
    up = pricing.price_lines(
        [pricing.LineIn("t", Decimal("10.00"))], [rule(1, "percent", "12.5", effect="markup")], "USD"
    )
    assert up[0].amount == Decimal("11.25")


amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=2)
percents = st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2)


@settings(max_examples=300)
@given(
    amounts,
    st.integers(1, 24),
    st.lists(
        st.tuples(
            st.sampled_from(["percent", "fixed", "volume"]), percents, st.sampled_from(["discount", "markup"])
        ),
        max_size=6,
    ),
)
def test_invoice_lines_add_up_exactly(
    price: Decimal, quantity: int, specs: list[tuple[str, Decimal, str]]
) -> None:
    rules = [
        pricing.Rule(
            id=i,
            name=f"r{i}",
            kind=kind,
            effect=effect,
            value=value,
            tiers=((1, value),) if kind == "volume" else (),
            priority=i,
        )
        for i, (kind, value, effect) in enumerate(specs, start=1)
    ]
    line = pricing.price_lines([pricing.LineIn("t", price, quantity)], rules, "USD")[0]
    assert line.base == price * quantity
    assert line.amount == line.base + sum((a.amount for a in line.adjustments), Decimal(0))
    assert line.amount >= 0
    assert line.amount == money.round_money(line.amount, "USD")
    assert all(a.amount == money.round_money(a.amount, "USD") for a in line.adjustments)
    if all(effect == "discount" for _, _, effect in specs):
        assert line.amount <= line.base


# --- T-04: plan change conversion -----------------------------------------------------------------------


def test_plan_change_mid_period_exact() -> None:
    # A 30.00/month license from 1 March to 1 April (31 days); switch on 11 March -> 21 unused days.
    conv = pricing.convert(
        value=Decimal("30.00"),
        start=date(2026, 3, 1),
        end=date(2026, 4, 1),
        switch_day=date(2026, 3, 11),
        new_price=Decimal("90.00"),
        new_unit="month",
        new_count=1,
        currency="USD",
    )
    assert (conv.total_days, conv.unused_days) == (31, 21)
    # 30 x 21 / 31 = 20.3225... -> 20.32
    assert conv.unused_value == Decimal("20.32")
    # New period 11 March -> 11 April = 31 days at 90.00: 20.32 x 31 / 90 = 6.999... -> 6 whole days.
    assert conv.new_period_days == 31
    assert conv.extension_days == 6
    # 6 days of the new tariff are worth 90 x 6 / 31 = 17.419... -> 17.42; 2.90 does not make a day.
    assert conv.remainder == Decimal("2.90")
    assert conv.new_end == date(2026, 4, 17)


def test_plan_change_leap_february_and_downgrade() -> None:
    # A yearly 365.00 license 2028-01-01..2029-01-01 (366 days, leap year); switch on 29 Feb.
    conv = pricing.convert(
        value=Decimal("365.00"),
        start=date(2028, 1, 1),
        end=date(2029, 1, 1),
        switch_day=date(2028, 2, 29),
        new_price=Decimal("10.00"),
        new_unit="month",
        new_count=1,
        currency="USD",
    )
    assert conv.total_days == 366 and conv.unused_days == 307
    assert conv.unused_value == Decimal("306.16")  # 365 x 307 / 366 = 306.1612...
    assert conv.new_period_days == 29  # 29 Feb -> 29 Mar
    assert conv.extension_days == 887  # 306.16 x 29 / 10 = 887.864
    # A change before the license starts carries its whole value; after its end, nothing.
    before = pricing.convert(
        value=Decimal("30"),
        start=date(2026, 3, 1),
        end=date(2026, 4, 1),
        switch_day=date(2026, 2, 20),
        new_price=Decimal("30"),
        new_unit="month",
        new_count=1,
        currency="USD",
    )
    assert before.unused_days == 31 and before.unused_value == Decimal("30.00")
    after = pricing.convert(
        value=Decimal("30"),
        start=date(2026, 3, 1),
        end=date(2026, 4, 1),
        switch_day=date(2026, 4, 5),
        new_price=Decimal("30"),
        new_unit="month",
        new_count=1,
        currency="USD",
    )
    assert after.unused_days == 0 and after.extension_days == 0


@settings(max_examples=300)
@given(
    amounts,
    st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)),
    st.integers(1, 800),
    st.integers(0, 900),
    st.decimals(min_value=Decimal("1.00"), max_value=Decimal("5000"), places=2),
    st.sampled_from([("month", 1), ("month", 12), ("day", 30), ("day", 7)]),
)
def test_conversion_never_gives_more_than_the_unused_value(
    value: Decimal, start: date, length: int, offset: int, new_price: Decimal, period: tuple[str, int]
) -> None:
    end = start + timedelta(days=length)
    switch = start + timedelta(days=offset)
    conv = pricing.convert(
        value=value,
        start=start,
        end=end,
        switch_day=switch,
        new_price=new_price,
        new_unit=period[0],
        new_count=period[1],
        currency="USD",
    )
    assert 0 <= conv.unused_days <= conv.total_days == length
    assert Decimal(0) <= conv.unused_value <= value
    days = conv.new_period_days
    # The extension is worth at most the unused value, and one more day would be worth more
    # (compared without dividing, so the check itself is exact).
    assert new_price * conv.extension_days <= conv.unused_value * days
    if conv.extension_days < pricing.MAX_EXTENSION_DAYS:
        assert new_price * (conv.extension_days + 1) > conv.unused_value * days
    assert Decimal(0) <= conv.remainder <= conv.unused_value
    assert conv.new_end == dates.period_end(switch, *period) + timedelta(days=conv.extension_days)
