import pytest
from hypothesis import given
from hypothesis import strategies as st

from lizzy.phone import InvalidPhoneNumber, hash_phone, mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+12065550100", "+12065550100"),
        ("(206) 555-0100", "+12065550100"),
        ("206.555.0100", "+12065550100"),
        (" +1 206 555 0100 ", "+12065550100"),
        ("+44 20 7183 8750", "+442071838750"),
    ],
)
def test_numbers_are_normalised_to_e164(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "hello", "+1206555", "+1" + "2" * 70, "+999999999999"])
def test_invalid_numbers_are_refused(raw):
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw)


def test_mask_and_hash_hide_the_number():
    assert mask_phone("+12065550100") == "+1******0100"
    assert "2065550100" not in hash_phone("+12065550100")
    assert hash_phone("+12065550100") == hash_phone("+12065550100")


@given(st.text(max_size=80))
def test_normalisation_never_crashes_and_is_idempotent(raw):
    try:
        phone = normalize_phone(raw)
    except InvalidPhoneNumber:
        return
    assert phone.startswith("+")
    assert normalize_phone(phone) == phone
