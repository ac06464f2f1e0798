# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Whether directives given for one nginx block stay inside it."""

from __future__ import annotations


def nginx_block_balanced(text):
    """True when every brace outside quotes and comments closes one opened before it, and all are
    closed: the text cannot end its location block early and add directives to the server."""
    depth, quote, chars = 0, None, iter(str(text))
    for char in chars:
        if quote:
            if char == "\\":
                next(chars, None)  # an escaped character, a quote included
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            for rest in chars:  # a comment runs to the end of its line
                if rest == "\n":
                    break
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and quote is None


class FilterModule:
    def filters(self):
        return {"nginx_block_balanced": nginx_block_balanced}
