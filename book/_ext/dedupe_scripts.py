"""Sphinx extension: drop script tags that a page would include twice.

sphinx-thebe 0.3.1 registers its inline configuration script (``const THEBE_JS_URL = ...``)
twice in this build (once with filename None, once with ""), as does sphinx-togglebutton's
selector script; the second THEBE copy is a syntax error in every page's console
("Identifier 'THEBE_JS_URL' has already been declared"), found by ``make site-test``.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        # an inline script is registered once with filename None and once with ""
        name = getattr(script, "filename", script) or ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
