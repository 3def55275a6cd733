"""What a conversion read, converted, wrote and dropped (:class:`ConversionReport`).

Its own module so that declaring formats (``core/formats.py``) imports no pydantic;
``annobridge.core.formats.ConversionReport`` still names it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, PrivateAttr


class ConversionReport(BaseModel):
    """What a conversion read, converted, wrote and dropped, counted per annotation kind.

    Kinds are the model's ``type`` names; predictions are counted as ``"prediction:<type>"``.
    ``converted`` maps ``"<from> -> <to>"`` (``"polygon -> box"``, ``"prediction:polygon ->
    box"``) to the number of annotations the target got in another kind than they were read
    in (``core/derive.py``). ``dropped`` maps a kind (or a field such as
    ``"attribute:truncated"``, ``"item metadata"``) to ``{reason: count}``.
    """

    model_config = ConfigDict(extra="forbid")
    source: str | None = None
    destination: str | None = None
    source_format: str | None = None
    destination_format: str | None = None
    items_read: int = 0
    items_written: int = 0
    read: dict[str, int] = {}
    converted: dict[str, int] = {}
    dropped: dict[str, dict[str, int]] = {}
    notes: list[str] = []
    _delta: dict[str, int] = PrivateAttr(default_factory=dict)  # written - (read - dropped), per kind
    _tallies: dict[str, dict[str, int]] = PrivateAttr(default_factory=dict)  # note template -> counts

    def drop(self, what: str, reason: str, count: int = 1) -> None:
        """Record that ``count`` of ``what`` could not be kept, and why."""
        if count:
            reasons = self.dropped.setdefault(what, {})
            reasons[reason] = reasons.get(reason, 0) + count

    def add(self, part: ConversionReport) -> None:
        """Add the counts of ``part`` (one shard's report) to this report; its notes once each."""
        self.items_read += part.items_read
        self.items_written += part.items_written
        for kind, n in part.read.items():
            self.read[kind] = self.read.get(kind, 0) + n
        for key, n in part.converted.items():
            self.converted[key] = self.converted.get(key, 0) + n
        for what, reasons in part.dropped.items():
            for reason, n in reasons.items():
                self.drop(what, reason, n)
        for kind, n in part._delta.items():
            self._delta[kind] = self._delta.get(kind, 0) + n
        tallied = {part._tally_note(t) for t in part._tallies}
        for note in part.notes:
            if note not in self.notes and note not in tallied:
                self.notes.append(note)
        for template, counts in part._tallies.items():
            self.tally(template, counts)

    def tally(self, template: str, counts: dict[str, int]) -> None:
        """Add ``counts`` to the counted note ``template`` (with ``{total}`` and ``{counts}``
        fields): one note with the sums, however many shards counted.

        ``tally("filled {total} values: {counts}", {"a": 2})`` notes ``filled 2 values: a 2``.
        """
        old = self._tally_note(template) if template in self._tallies else None
        sums = self._tallies.setdefault(template, {})
        for key, n in counts.items():
            sums[key] = sums.get(key, 0) + n
        note = self._tally_note(template)
        if old in self.notes:
            self.notes[self.notes.index(old)] = note
        else:
            self.notes.append(note)

    def _tally_note(self, template: str) -> str:
        sums = self._tallies[template]
        return template.format(total=sum(sums.values()),
                               counts=", ".join(f"{key} {n}" for key, n in sorted(sums.items())))

    def convert(self, source: str, target: str, count: int = 1, *, consumed: int | None = None,
                made: int | None = None) -> None:
        """Record that ``count`` annotations of kind ``target`` were made from ``source``.

        Conversions are one to one except between an index mask and its objects: pass
        ``consumed`` (annotations of ``source`` used up) and ``made`` (annotations of
        ``target`` added) when they differ from ``count``; :attr:`written` uses them.
        """
        if count:
            key = f"{source} -> {target}"
            self.converted[key] = self.converted.get(key, 0) + count
        target = ("prediction:" if source.startswith("prediction:") else "") + target
        consumed = count if consumed is None else consumed
        made = count if made is None else made
        delta = self._delta  # a private attribute: each lookup goes through pydantic's __getattr__
        if consumed:
            delta[source] = delta.get(source, 0) - consumed
        if made:  # a conversion in place (consumed = made = 0) leaves the counts as they are
            delta[target] = delta.get(target, 0) + made

    def read_as(self, source: str, target: str, count: int) -> None:
        """Record that a reader handed on ``count`` annotations it read as ``source`` as the
        ``target`` the engine would have derived from them (``Context.boxes_on_read``): read
        as ``source`` and converted, like a conversion in the engine. Called once the items
        went through the engine's count, which counted them as read ``target``."""
        self.read[source] = self.read.get(source, 0) + count
        left = self.read.get(target, 0) - count
        if left:
            self.read[target] = left
        else:  # none was read as such
            self.read.pop(target, None)
        self.convert(source, target, count)

    @property
    def written(self) -> dict[str, int]:
        """Annotations written per kind: what was read, less what was dropped or converted
        away, plus what was converted into the kind."""
        out = {}
        for kind, n in self.read.items():
            out[kind] = n - sum(self.dropped.get(kind, {}).values())
        for kind, n in self._delta.items():
            out[kind] = out.get(kind, 0) + n
        return out

    @property
    def lossless(self) -> bool:
        return not self.dropped

    def summary(self) -> str:
        """A few human-readable lines for the CLI."""
        lines = [
            f"read {self.items_read} items ({self.source_format or 'in memory'}), "
            f"wrote {self.items_written} items ({self.destination_format})"
        ]
        if self.read:
            written = self.written
            parts = ", ".join(f"{k} {written.get(k, 0)}/{self.read.get(k, 0)}"
                              for k in sorted(set(self.read) | {k for k, n in written.items() if n}))
            lines.append(f"annotations written/read: {parts}")
        for key, n in sorted(self.converted.items()):
            lines.append(f"converted {n:,} {key}")
        for what, reasons in sorted(self.dropped.items()):
            for reason, n in sorted(reasons.items()):
                lines.append(f"dropped {n} x {what}: {reason}")
        lines.extend(self.notes)
        if not self.dropped:
            lines.append("nothing was dropped")
        return "\n".join(lines)
