"""Yakuba (役場): unified communications and groupware for Japanese local governments."""
