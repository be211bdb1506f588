"""From token ids to text while tokens arrive: UTF-8 hold-back and stop strings across token boundaries.

A byte-level BPE token (or a byte-fallback token of the character tokenizer) can carry part of a
UTF-8 character: an emoji is four bytes and may span two or more tokens. Decoding the ids so far then
ends in U+FFFD; `TextAssembler` holds such a tail back until the character is whole. It also holds
back any tail that could be the start of a stop string, so a stop string never reaches the reader,
even when it is split over several tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"  # what a decoder gives for an incomplete UTF-8 sequence


class TextAssembler:
    """Accumulates generated ids of one sequence; `push` returns the text that is now final."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()) -> None:
        self.decode = decode
        self.stop = tuple(stop)
        self.ids: list[int] = []
        self.text = ""  # the decoded text so far, cut at a stop string once one is found
        self.emitted = 0  # characters of `text` already handed out
        self.stopped = False

    def push(self, token: int) -> str:
        """Add one token; returns the newly final text (possibly empty)."""
        if self.stopped:
            return ""
        self.ids.append(token)
        self.text = self.decode(self.ids)
        for s in self.stop:
            # a new match can only start in the part that was not final before this token
            at = self.text.find(s, max(0, self.emitted - len(s) + 1))
            if at >= 0:
                self.text = self.text[:at]
                self.stopped = True
        if self.stopped:
            return self._emit(len(self.text))
        safe = len(self.text.rstrip(REPLACEMENT))  # an incomplete character stays back
        safe -= self._stop_prefix(self.text[:safe])
        return self._emit(safe)

    def finish(self) -> str:
        """The rest of the text once no more tokens come (a broken character then shows as U+FFFD)."""
        return self._emit(len(self.text))

    def _stop_prefix(self, text: str) -> int:
        """Length of the longest tail of `text` that begins some stop string."""
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _emit(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        piece = self.text[self.emitted : upto]
        self.emitted = upto
        return piece
