"""MkDocs hook: the generated configuration tables are GitHub-flavoured Markdown, where a `\\|` inside a code span
is a literal pipe; Python-Markdown keeps the backslash there, so it is dropped from code in the rendered page."""

import re

_CODE = re.compile(r"<code>(.*?)</code>", re.DOTALL)


def on_page_content(html: str, **_) -> str:
    return _CODE.sub(lambda m: "<code>" + m.group(1).replace("\\|", "|") + "</code>", html)
