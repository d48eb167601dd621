"""Money as :class:`~decimal.Decimal`, never float.

Rounding rule (docs/licensing.md): every amount that is stored or printed is rounded to the
currency's minor unit with ROUND_HALF_UP at the moment it is computed, so the printed parts of an
invoice always add up to its printed total.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

# Currencies whose minor unit is not 1/100 (ISO 4217); every other code uses 2 decimals.
_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}
ZERO = Decimal(0)


class MoneyError(ValueError):
    pass


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_digits(currency))


MAX_AMOUNT = Decimal(10) ** 12  # a price or payment of a trillion is an input error


def parse(value: object, currency: str = "", *, allow_negative: bool = False) -> Decimal:
    """A Decimal from text or an int (floats are refused: they cannot hold money exactly)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError("amounts are given as strings or integers, not floating-point numbers")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise MoneyError(f"{value!r} is not an amount") from None
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not an amount")
    if abs(amount) >= MAX_AMOUNT:
        raise MoneyError(f"{value!r} is too large (at most {MAX_AMOUNT - 1} per amount)")
    if amount < 0 and not allow_negative:
        raise MoneyError("amount must not be negative")
    if currency and amount != round_money(amount, currency):
        raise MoneyError(f"{value} has more decimals than {currency.upper()} allows")
    return amount


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def text(amount: Decimal, currency: str) -> str:
    """The canonical stored/wire form: fixed decimals of the currency (``"12.50"``)."""
    return str(round_money(amount, currency))


def floor_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def valid_currency(code: str) -> str:
    code = code.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise MoneyError(f"{code!r} is not an ISO 4217 currency code")
    return code
