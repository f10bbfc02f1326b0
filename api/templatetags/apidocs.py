"""``{{ text|code_spans }}``: descriptions mark code with backticks; show it as code."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from api.docs import code_spans as _code_spans

register = template.Library()


@register.filter
def code_spans(text: object) -> SafeString:
    return mark_safe(_code_spans(str(text or "")))  # noqa: S308 - escaped in api.docs.code_spans
