import pytest
from tests.browser.test_pages import *  # noqa
from tests.browser.test_pages import erin, visits  # noqa

@pytest.fixture(autouse=True)
def _chat_urls(settings) -> None:
    settings.ROOT_URLCONF = "tests.browser.test_chat"
