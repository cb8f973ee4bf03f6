"""Stripe's test cards and test PaymentMethods, and what confirming with each does.

From https://docs.stripe.com/testing: 4242 4242 4242 4242 succeeds, ...0002 is a generic decline,
...9995 is declined for insufficient funds, ...0119 a processing error, ...0069 an expired card,
...0127 an incorrect CVC, 4000 0027 6000 3184 always asks for 3-D Secure authentication. A number that
fails the Luhn check is refused as ``incorrect_number``; any other Luhn-valid number succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TEST_CARDS", "TEST_PAYMENT_METHODS", "CardOutcome", "luhn_valid"]


@dataclass(frozen=True, slots=True)
class CardOutcome:
    """``code`` None means the charge succeeds; ``requires_action`` means 3-D Secure is needed."""

    code: str | None = None
    decline_code: str | None = None
    requires_action: bool = False
    brand: str = "visa"

    @property
    def message(self) -> str:
        messages = {
            "card_declined": "Your card was declined.",
            "expired_card": "Your card has expired.",
            "incorrect_cvc": "Your card's security code is incorrect.",
            "processing_error": "An error occurred while processing your card. Try again in a little bit.",
            "incorrect_number": "Your card number is incorrect.",
        }
        if self.decline_code == "insufficient_funds":
            return "Your card has insufficient funds."
        return messages.get(self.code or "", "Your card was declined.")


SUCCEEDS = CardOutcome()
TEST_CARDS: dict[str, CardOutcome] = {
    "4242424242424242": SUCCEEDS,
    "5555555555554444": CardOutcome(brand="mastercard"),
    "4000000000000002": CardOutcome(code="card_declined", decline_code="generic_decline"),
    "4000000000009995": CardOutcome(code="card_declined", decline_code="insufficient_funds"),
    "4000000000000119": CardOutcome(code="processing_error", decline_code="processing_error"),
    "4000000000000069": CardOutcome(code="expired_card", decline_code="expired_card"),
    "4000000000000127": CardOutcome(code="incorrect_cvc", decline_code="incorrect_cvc"),
    "4000002760003184": CardOutcome(requires_action=True),
}
TEST_PAYMENT_METHODS: dict[str, CardOutcome] = {
    "pm_card_visa": SUCCEEDS,
    "pm_card_mastercard": CardOutcome(brand="mastercard"),
    "pm_card_chargeDeclined": TEST_CARDS["4000000000000002"],
    "pm_card_chargeDeclinedInsufficientFunds": TEST_CARDS["4000000000009995"],
    "pm_card_chargeDeclinedProcessingError": TEST_CARDS["4000000000000119"],
    "pm_card_chargeDeclinedExpiredCard": TEST_CARDS["4000000000000069"],
    "pm_card_chargeDeclinedIncorrectCvc": TEST_CARDS["4000000000000127"],
    "pm_card_authenticationRequired": TEST_CARDS["4000002760003184"],
}


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
