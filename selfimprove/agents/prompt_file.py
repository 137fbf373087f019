"""Prompt files: chat templates in ``agents/prompts/``, parsed and filled in one place.

A prompt file is plain text. A line ``[system]``, ``[user]`` or ``[assistant]`` starts
a chat message; a line ``[<part> <kind>]`` (``[fix code]``, ``[check answer]``) starts
the text that ``{<part>}`` becomes for tasks of that kind. Lines starting with ``#``
are comments, and so is everything before the first section. The last message must
be a ``[user]`` one.

    from selfimprove.agents.prompt_file import PromptFile
    prompt = PromptFile.load(PROMPT_PATH, "fix")
    messages = prompt.render(task, answer=answer, feedback=feedback)

``render`` fills ``{task}`` (the task's prompt), ``{<part>}`` (the part for the
task's kind, "" if the file has none) and the keyword values in one pass, and only
those names: other braces (JSON in the template, braces in a task or an answer)
stay as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from selfimprove.types import Task

_ROLES = "system|user|assistant"


class PromptFile(BaseModel):
    """A chat template parsed from a prompt file: ``[role]`` messages and ``[<part> kind]`` parts."""

    model_config = ConfigDict(frozen=True)

    messages: list[tuple[str, str]]  # (role, template)
    parts: dict[str, str] = Field(default_factory=dict)  # task kind -> the {<part>} text
    part: str = ""  # the part's name, "" when the file has none

    # What ``load()`` reads when not told: a subclass for one prompt file sets these.
    default_path: ClassVar[Path | None] = None
    default_part: ClassVar[str] = ""

    @classmethod
    def load(cls, path: Path | None = None, part: str | None = None) -> Self:
        """Parse the prompt file at ``path`` whose ``[<part> kind]`` sections fill ``{<part>}``.

        Raises:
            ValueError: no ``path`` (and no ``default_path``), or the file's last message
                is not a ``[user]`` one (or it has none).
        """
        path = path or cls.default_path
        part = cls.default_part if part is None else part
        if path is None:
            raise ValueError(f"{cls.__name__}.load needs the path of a prompt file")
        names = f"{_ROLES}|{re.escape(part)} \\w+" if part else _ROLES
        header = re.compile(rf"^\[({names})\]\s*$")
        sections: list[tuple[str, list[str]]] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            match = header.match(line)
            if match:
                sections.append((match.group(1), []))
            elif not line.startswith("#") and sections:
                sections[-1][1].append(line)
        texts = [(name, "\n".join(body).strip()) for name, body in sections]
        messages = [(n, t) for n, t in texts if " " not in n]
        if not messages or messages[-1][0] != "user":
            raise ValueError(f"prompt file {str(path)!r} must end with a [user] message")
        parts = {n.removeprefix(f"{part} "): t for n, t in texts if " " in n}
        return cls(messages=messages, parts=parts, part=part)

    def render(self, task: Task | None, /, **values: str) -> list[dict[str, str]]:
        """The chat messages for ``task`` with ``{task}``, ``{<part>}`` and ``values`` filled in.

        ``values`` win over the task's: ``render(task, task=text)`` shows ``text``.
        With ``task=None`` only ``values`` are filled.
        """
        known: dict[str, str] = {}
        if task is not None:
            known["task"] = task.prompt
            if self.part:
                known[self.part] = self.parts.get(task.kind, "")
        known |= values
        if not known:
            return [{"role": role, "content": text} for role, text in self.messages]
        placeholder = re.compile(r"\{(" + "|".join(map(re.escape, known)) + r")\}")

        def fill(text: str) -> str:
            return placeholder.sub(lambda m: known[m.group(1)], text)

        return [{"role": role, "content": fill(text)} for role, text in self.messages]
