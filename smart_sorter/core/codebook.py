"""The codebook: the questions asked of every image, their JSON schema, and answers checked against it.

A codebook maps each field to a description (the annotation manual's words, shown to the model) and a
type: one of given `options`, `yes/no`, `several options`, a `number`, or short free `text`. It is
plain data in (a mapping or list read from YAML/JSON, or one question given with `--ask`), a JSON
schema and a prompt out; an answer is read into one value per field, or the problems with it in words
(which are shown to the model when it is asked again).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CodebookError
from .data_files import read_data_file

OPTIONS, YES_NO, SEVERAL, NUMBER, TEXT = "options", "yes/no", "several options", "number", "text"
FIELD_TYPES = (OPTIONS, YES_NO, SEVERAL, NUMBER, TEXT)
WHOLE_NUMBER_TYPES = ("integer", "count", "whole number")  # numbers without a fraction: counts of people, ...
_TYPE_NAMES = {
    "options": OPTIONS, "option": OPTIONS, "one of": OPTIONS, "choice": OPTIONS, "category": OPTIONS,
    "yes/no": YES_NO, "yes-no": YES_NO, "yesno": YES_NO, "boolean": YES_NO, "bool": YES_NO,
    "several options": SEVERAL, "several": SEVERAL, "multiple options": SEVERAL, "multiple": SEVERAL,
    "many": SEVERAL, "number": NUMBER, "integer": NUMBER, "count": NUMBER, "whole number": NUMBER,
    "text": TEXT, "short text": TEXT, "free text": TEXT, "string": TEXT,
}  # fmt: skip
YES, NO = "yes", "no"
TEXT_MAX_CHARACTERS = 200
# coding.csv's own columns: no field may take one of their names
RESERVED_NAMES = ("file", "status", "error", "sha256", "model", "tokens_in", "tokens_out", "cost", "raw_answer")
RESERVED_NAMES += ("attempts", "media", "frames_sent", "destination", "action")
ASK_FIELD = "answer"
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


@dataclass(frozen=True)
class Field:
    """One question of the codebook."""

    name: str
    description: str
    kind: str
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    whole: bool = False  # a number without a fraction (type `count`, `integer` or `whole number`)

    def schema(self) -> dict[str, Any]:
        """This field's JSON schema."""
        described: dict[str, Any] = {"description": self.description}
        if self.kind == OPTIONS:
            return {"type": "string", "enum": list(self.options), **described}
        if self.kind == YES_NO:
            return {"type": "string", "enum": [YES, NO], **described}
        if self.kind == SEVERAL:
            items = {"type": "string", "enum": list(self.options)}
            return {"type": "array", "items": items, "uniqueItems": True, **described}
        if self.kind == NUMBER:
            bounds = {"minimum": self.minimum} if self.minimum is not None else {}
            bounds |= {"maximum": self.maximum} if self.maximum is not None else {}
            return {"type": "integer" if self.whole else "number", **bounds, **described}
        return {"type": "string", "maxLength": TEXT_MAX_CHARACTERS, **described}

    def instruction(self) -> str:
        """What the prompt says of this field: its key, its description, and what the value may be."""
        quoted = ", ".join(json.dumps(option, ensure_ascii=False) for option in self.options)
        value = {
            OPTIONS: f"exactly one of {quoted}",
            YES_NO: '"yes" or "no"',
            SEVERAL: f"a list of none, one or several of {quoted}",
            NUMBER: self._number_text() + self._bounds_text(),
            TEXT: f"a short text (at most {TEXT_MAX_CHARACTERS} characters)",
        }[self.kind]
        return f"- {json.dumps(self.name, ensure_ascii=False)}: {self.description} Value: {value}."

    def _number_text(self) -> str:
        return "a whole number" if self.whole else "a number"

    def _bounds_text(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f" from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f" of at least {self.minimum:g}"
        return f" of at most {self.maximum:g}" if self.maximum is not None else ""

    @property
    def categories(self) -> tuple[str, ...]:
        """The values a field of given values can take (options, yes/no); empty for the others."""
        return (YES, NO) if self.kind == YES_NO else self.options if self.kind in (OPTIONS, SEVERAL) else ()


@dataclass(frozen=True)
class Codebook:
    """The fields asked of every image, in the order written."""

    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise CodebookError(f"The codebook has no field {name!r}; its fields are {', '.join(self.names)}.")

    def schema(self) -> dict[str, Any]:
        """The JSON schema of one answer: an object with every field, and nothing else."""
        return {
            "type": "object",
            "properties": {field.name: field.schema() for field in self.fields},
            "required": list(self.names),
            "additionalProperties": False,
        }

    def prompt(self) -> str:
        """The instructions sent with each image."""
        lines = "\n".join(field.instruction() for field in self.fields)
        return (
            "Look at the image and answer each question below. Reply with one JSON object only, no other text,"
            f" with exactly these keys:\n{lines}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The codebook as plain data (recorded with a run so a changed codebook is noticed)."""
        return {field.name: _field_record(field) for field in self.fields}


def _field_record(field: Field) -> dict[str, Any]:
    record: dict[str, Any] = {"description": field.description, "type": field.kind}
    if field.options:
        record["options"] = list(field.options)
    bounds = (("minimum", field.minimum), ("maximum", field.maximum))
    record |= {key: value for key, value in bounds if value is not None}
    return record


# Reading a codebook ------------------------------------------------------------------------------
def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CodebookError(f"{what} must be a non-empty text; got {value!r}.")
    return value.strip()


def _kind(name: str, spec: Mapping[str, Any]) -> str:
    written = spec.get("type")
    if written is None:
        if "options" in spec:
            return OPTIONS
        raise CodebookError(
            f"The field {name!r} needs a type ({', '.join(FIELD_TYPES)}) or a list of options, as in"
            " `type: yes/no` or `options: [photo, meme]`."
        )
    kind = _TYPE_NAMES.get(str(written).strip().lower())
    if kind is None:
        raise CodebookError(f"The field {name!r} has the type {written!r}; the types are {', '.join(FIELD_TYPES)}.")
    return kind


def _option_text(option: object) -> object:
    """YAML reads `yes`, `no`, `on`, `off` as booleans and `3` as a number: options are texts."""
    if isinstance(option, bool):
        return YES if option else NO
    return str(option) if isinstance(option, (int, float)) else option


def _options(name: str, kind: str, spec: Mapping[str, Any]) -> tuple[str, ...]:
    written = spec.get("options")
    if kind not in (OPTIONS, SEVERAL):
        if written is not None:
            raise CodebookError(f"The field {name!r} is of type {kind} and takes no options; remove them.")
        return ()
    if isinstance(written, str):
        written = written.split(",")
    if not isinstance(written, Sequence) or not written:
        raise CodebookError(f"The field {name!r} ({kind}) needs a list of options, as in `options: [photo, meme]`.")
    options = tuple(_text(_option_text(option), f"An option of {name!r}") for option in written)
    seen: dict[str, str] = {}
    for option in options:
        if option.casefold() in seen:
            raise CodebookError(f"The field {name!r} lists the option {option!r} twice; keep it once.")
        seen[option.casefold()] = option
    if kind == OPTIONS and len(options) < 2:
        raise CodebookError(f"The field {name!r} has one option only; give at least two (or make it yes/no).")
    return options


def _bound(name: str, spec: Mapping[str, Any], key: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CodebookError(f"The {key} of the field {name!r} must be a number; got {value!r}.")
    return float(value)


_KEYS = {"description", "type", "options", "minimum", "maximum", "name"}


def parse_field(name: object, spec: object) -> Field:
    """One field from its name and its specification (a mapping, or the description alone for text)."""
    name = _text(name, "A field's name")
    if not _NAME.match(name):
        raise CodebookError(f"The field name {name!r} is too long or holds control characters; shorten it.")
    if name.casefold() in RESERVED_NAMES:
        raise CodebookError(
            f"The field name {name!r} is a column coding.csv writes itself ({', '.join(RESERVED_NAMES)}); rename it."
        )
    if not isinstance(spec, Mapping):
        raise CodebookError(
            f"The field {name!r} must have a description and a type, as in"
            f" `{name}: {{description: Is there a weapon?, type: yes/no}}`; got {spec!r}."
        )
    unknown = sorted(set(map(str, spec)) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise CodebookError(f"The field {name!r} has unknown keys {', '.join(unknown)}; the keys are {known}.")
    description = _text(spec.get("description"), f"The description of the field {name!r}")
    kind = _kind(name, spec)
    minimum, maximum = _bound(name, spec, "minimum"), _bound(name, spec, "maximum")
    if (minimum is not None or maximum is not None) and kind != NUMBER:
        raise CodebookError(f"The field {name!r} is of type {kind}; only numbers take a minimum or a maximum.")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise CodebookError(f"The field {name!r} has a minimum ({minimum:g}) above its maximum ({maximum:g}).")
    whole = kind == NUMBER and str(spec.get("type", "")).strip().lower() in WHOLE_NUMBER_TYPES
    return Field(name, description, kind, _options(name, kind, spec), minimum, maximum, whole)


def parse_codebook(data: object) -> Codebook:
    """A codebook from a mapping name -> specification, or a list of specifications with a `name` each."""
    if isinstance(data, Mapping):
        pairs = list(data.items())
    elif isinstance(data, Sequence) and not isinstance(data, str):
        pairs = [(spec.get("name") if isinstance(spec, Mapping) else None, spec) for spec in data]
    else:
        raise CodebookError(
            "A codebook maps each field's name to its description and type, as in"
            " `weapon: {description: Is there a weapon?, type: yes/no}`."
        )
    if not pairs:
        raise CodebookError("The codebook has no field; add at least one question.")
    fields = []
    for name, spec in pairs:
        if isinstance(spec, Mapping):
            spec = {key: value for key, value in spec.items() if key != "name"}
        fields.append(parse_field(name, spec))
    seen: set[str] = set()
    for field in fields:
        if field.name.casefold() in seen:
            raise CodebookError(f"The field {field.name!r} appears twice in the codebook; keep it once.")
        seen.add(field.name.casefold())
    return Codebook(tuple(fields))


def codebook_from_question(question: str, options: Sequence[str] | None = None) -> Codebook:
    """The one-field codebook of `--ask`: a yes/no question, or one of the given options."""
    spec: dict[str, Any] = {"description": _text(question, "The question")}
    spec |= {"options": list(options)} if options else {"type": YES_NO}
    return Codebook((parse_field(ASK_FIELD, spec),))


# Reading an answer -------------------------------------------------------------------------------
def json_in_text(text: str) -> Any:
    """The first JSON object in a model's reply (which may wrap it in prose or a ``` fence); ValueError if none."""
    decoder = json.JSONDecoder(strict=False)  # a raw control character in a text is no reason to refuse it
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("the reply holds no JSON object")


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else float(value)


def _choice(value: Any, options: Sequence[str]) -> str | None:
    if not isinstance(value, str):
        return None
    by_key = {option.casefold(): option for option in options}
    return by_key.get(value.strip().casefold())


def _read_value(field: Field, value: Any) -> tuple[Any, str]:
    """(the value as coding.csv holds it, '') or (None, what is wrong with it)."""
    if field.kind == OPTIONS:
        chosen = _choice(value, field.options)
        return (chosen, "") if chosen else (None, f"must be one of {', '.join(field.options)}; got {value!r}")
    if field.kind == YES_NO:
        if isinstance(value, bool):
            return (YES if value else NO), ""
        chosen = _choice(value, (YES, NO))
        return (chosen, "") if chosen else (None, f'must be "yes" or "no"; got {value!r}')
    if field.kind == SEVERAL:
        if not isinstance(value, list):
            return None, f"must be a list of any of {', '.join(field.options)}; got {value!r}"
        chosen = [_choice(item, field.options) for item in value]
        wrong = [item for item, known in zip(value, chosen) if known is None]
        if wrong:
            return None, f"may only hold {', '.join(field.options)}; got {', '.join(map(repr, wrong))}"
        return [option for option in field.options if option in chosen], ""
    if field.kind == NUMBER:
        number = _number(value)
        if number is None or (field.whole and not isinstance(number, int)):
            return None, f"must be {field._number_text()}; got {value!r}"
        if (field.minimum is not None and number < field.minimum) or (
            field.maximum is not None and number > field.maximum
        ):
            return None, f"must be {field._number_text()}{field._bounds_text()}; got {number!r}"
        return number, ""
    if not isinstance(value, str):
        return None, f"must be a text; got {value!r}"
    if len(value) > TEXT_MAX_CHARACTERS:
        return None, f"must be at most {TEXT_MAX_CHARACTERS} characters; got {len(value)}"
    return value.strip(), ""


@dataclass(frozen=True)
class Answer:
    """An answer read against the codebook: a value per field when it fits, else the problems in words."""

    values: dict[str, Any]
    problems: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.problems


def read_answer(reply: Any, codebook: Codebook) -> Answer:
    """Check a model's reply (its text, or JSON already parsed) against the codebook.

    Forgiving where the meaning is plain (`Yes` for `yes`, `true` for yes, `"3"` for 3, options in
    another case); every other departure is a problem, named with its field, for the retry prompt.
    """
    if isinstance(reply, str):
        try:
            reply = json_in_text(reply)
        except ValueError:
            shown = reply.strip()[:80]
            return Answer({}, (f"the reply is not a JSON object (it began {shown!r})",))
    if not isinstance(reply, dict):
        return Answer({}, (f"the reply must be a JSON object with the keys {', '.join(codebook.names)}",))
    values, problems = {}, []
    for field in codebook.fields:
        if field.name not in reply:
            problems.append(f"{field.name!r} is missing")
            continue
        value, problem = _read_value(field, reply[field.name])
        if problem:
            problems.append(f"{field.name!r} {problem}")
        else:
            values[field.name] = value
    extra = sorted(set(reply) - set(codebook.names))
    if extra:
        problems.append(f"unknown keys {', '.join(map(repr, extra))}: use only {', '.join(codebook.names)}")
    return Answer(values, tuple(problems))


def retry_prompt(problems: Sequence[str]) -> str:
    """What the model is told when its answer did not fit, before it is asked again."""
    return (
        "That answer does not fit the required format: "
        + "; ".join(problems)
        + ". Reply again with one JSON object only, with exactly the keys asked for."
    )


def cell(value: Any) -> Any:
    """A field's value as a coding.csv cell: several options joined by `; `."""
    return "; ".join(value) if isinstance(value, list) else value


def read_codebook_file(path: Path) -> Codebook:
    """A codebook from a YAML or JSON file."""
    data = read_data_file(path, "codebook file", CodebookError)
    try:
        return parse_codebook(data)
    except CodebookError as error:
        raise CodebookError(f"In the codebook file {str(path)!r}: {error}") from None
