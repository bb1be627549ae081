"""Token ids -> text as they are generated, for streaming to a terminal or a browser.

One token can hold half a UTF-8 character (byte-level BPE splits rare characters), so decoding each
token on its own would print replacement characters mid-word. An incremental UTF-8 decoder over the
tokens' raw bytes holds an incomplete character back until the next token completes it; the
concatenated pieces equal tokenizer.decode of the whole sequence.
"""
from __future__ import annotations

import codecs


class TokenTextStream:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        """The text this token completes ('' while a character is still incomplete)."""
        return self.decoder.decode(self.tokenizer.token_raw_bytes(token))

    def flush(self) -> str:
        """What is left at the end (a dangling partial character becomes U+FFFD, as decode does)."""
        return self.decoder.decode(b"", final=True)
