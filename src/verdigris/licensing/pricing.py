"""Pure price arithmetic: loyalty rules applied to invoice lines, and plan-change conversion.

Nothing here touches the database, so every rule is testable with exact numbers (and hypothesis).

Loyalty rules are applied to each line in ``(priority, id)`` order. A percent rule works on the
line amount as it stands after the rules before it (discounts compound); a fixed rule adds or
removes its amount once per unit; a volume rule picks the highest tier whose minimum quantity the
whole invoice reaches; a bonus-days rule adds days without changing the price. Each change is
rounded to the currency's minor unit (ROUND_HALF_UP) when it is made and recorded with the rule
that made it; a discount never takes a line below zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from verdigris.licensing import dates, money

DISCOUNT = "discount"
MARKUP = "markup"
RULE_KINDS = ("percent", "fixed", "volume", "bonus_days")
# A conversion never extends a license by more than this (a guard against absurd price ratios).
MAX_EXTENSION_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    name: str
    kind: str
    effect: str = DISCOUNT
    value: Decimal = Decimal(0)
    tiers: tuple[tuple[int, Decimal], ...] = ()
    promo_code: str | None = None
    tariff_code: str | None = None
    priority: int = 100

    def applies(self, tariff_code: str, promo_code: str | None) -> bool:
        if self.tariff_code and self.tariff_code != tariff_code:
            return False
        if self.promo_code:
            return promo_code is not None and promo_code.casefold() == self.promo_code.casefold()
        return True


@dataclass(frozen=True, slots=True)
class LineIn:
    tariff_code: str
    unit_price: Decimal
    quantity: int = 1
    description: str = ""
    instance_id: int | None = None


@dataclass(frozen=True, slots=True)
class Adjustment:
    rule_id: int
    rule: str
    kind: str
    amount: Decimal  # negative for a discount
    days: int = 0

    def as_json(self, currency: str) -> dict[str, object]:
        return {
            "ruleId": self.rule_id,
            "rule": self.rule,
            "kind": self.kind,
            "amount": money.text(self.amount, currency),
            "bonusDays": self.days,
        }


@dataclass(slots=True)
class PricedLine:
    line: LineIn
    base: Decimal
    amount: Decimal
    bonus_days: int = 0
    adjustments: list[Adjustment] = field(default_factory=list)


def volume_percent(rule: Rule, total_quantity: int) -> Decimal | None:
    best: tuple[int, Decimal] | None = None
    for minimum, percent in rule.tiers:
        if total_quantity >= minimum and (best is None or minimum > best[0]):
            best = (minimum, percent)
    return best[1] if best else None


def price_lines(
    lines: list[LineIn], rules: list[Rule], currency: str, promo_code: str | None = None
) -> list[PricedLine]:
    """Apply the loyalty rules to every line; returns the priced lines in the given order."""
    ordered = sorted(rules, key=lambda r: (r.priority, r.id))
    total_quantity = sum(line.quantity for line in lines)
    out: list[PricedLine] = []
    for line in lines:
        base = money.round_money(line.unit_price * line.quantity, currency)
        priced = PricedLine(line, base, base)
        for rule in ordered:
            if not rule.applies(line.tariff_code, promo_code):
                continue
            sign = -1 if rule.effect == DISCOUNT else 1
            delta = Decimal(0)
            days = 0
            if rule.kind == "percent":
                delta = sign * money.round_money(priced.amount * rule.value / 100, currency)
            elif rule.kind == "fixed":
                delta = sign * money.round_money(rule.value * line.quantity, currency)
            elif rule.kind == "volume":
                percent = volume_percent(rule, total_quantity)
                if percent is None:
                    continue
                delta = sign * money.round_money(priced.amount * percent / 100, currency)
            elif rule.kind == "bonus_days":
                days = int(rule.value)
            if priced.amount + delta < 0:
                delta = -priced.amount
            if delta == 0 and days == 0:
                continue
            priced.amount += delta
            priced.bonus_days += days
            priced.adjustments.append(Adjustment(rule.id, rule.name, rule.kind, delta, days))
        out.append(priced)
    return out


# --- plan change (T-04) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversion:
    """How the unused part of a license converts into days of a new tariff."""

    switch_day: date  # the first day of the new license
    total_days: int  # days the current license covers
    unused_days: int  # of those, days on or after the switch day
    value: Decimal  # what the current license was worth (paid, plus value it carried over)
    unused_value: Decimal  # value x unused_days / total_days, rounded to the minor unit
    new_price: Decimal  # price of one period of the new tariff
    new_period_days: int  # days of that period from the switch day
    extension_days: int  # whole days the unused value buys at the new tariff's daily price
    remainder: Decimal  # the part of a day's worth that does not make a whole day (not refunded)
    new_end: date  # the new license's exclusive end: one period plus the extension


def convert(
    *,
    value: Decimal,
    start: date,
    end: date,
    switch_day: date,
    new_price: Decimal,
    new_unit: str,
    new_count: int,
    currency: str,
) -> Conversion:
    total = max(0, dates.days_between(start, end))
    unused = max(0, dates.days_between(max(switch_day, start), end))
    unused = min(unused, total)
    unused_value = money.round_money(value * unused / total, currency) if total else Decimal(0)
    period_end = dates.period_end(switch_day, new_unit, new_count)
    period_days = dates.days_between(switch_day, period_end)
    if new_price > 0 and period_days > 0:
        extension = min(MAX_EXTENSION_DAYS, money.floor_int(unused_value * period_days / new_price))
        used_up = money.round_money(new_price * extension / period_days, currency)
        remainder = max(Decimal(0), unused_value - used_up)
    else:
        extension, remainder = 0, unused_value
    return Conversion(
        switch_day=switch_day,
        total_days=total,
        unused_days=unused,
        value=value,
        unused_value=unused_value,
        new_price=new_price,
        new_period_days=period_days,
        extension_days=extension,
        remainder=remainder,
        new_end=period_end + dates.DAY * extension,
    )
