"""Labels as users write them: a comma list with a template, or categories each with prompts."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabelError
from .data_files import read_data_file
from .folders import lookalike_folders

LONG_LABEL_CHARS = 80
ARTICLES = frozenset({"a", "an", "the"})
_PHOTO_WORDS = r"(?:photo|photograph|picture|image|pic|snapshot|shot)s?"
_PHOTO_WORD = re.compile(rf"\b{_PHOTO_WORDS}\b", re.IGNORECASE)  # in a template, before its {}
_PHOTO_OF = re.compile(  # a label starting like "a photo of", "an image showing", "picture of"
    rf"^(?:an?\s+|the\s+)?{_PHOTO_WORDS}\s+(?:of|showing|with|depicting|from)\b", re.IGNORECASE
)


def _with_article(word: str) -> str:
    """`word` as an example would say it: "an army", "a cat"; names and plurals as they are."""
    if word[:1].isupper() or (word.endswith("s") and not word.endswith("ss")):
        return word
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def _listed(texts: Sequence[str], shown: int = 4) -> str:
    """'a', 'b' and 'c'; the first few of a long list, then how many more."""
    quoted = [repr(text) if len(text) <= 40 else repr(text[:40]) + "..." for text in texts[:shown]]
    if len(texts) > shown:
        return ", ".join(quoted) + f" and {len(texts) - shown} more"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


@dataclass(frozen=True)
class LabelSet:
    """The categories in the user's order, and the prompt texts each is scored by."""

    categories: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    template: str | None
    thresholds: tuple[float | None, ...] = ()  # per category, from a labels file; None: the run's own
    negatives: tuple[bool, ...] = ()  # "none of these" categories: when one wins, the file is uncertain

    @property
    def all_prompts(self) -> tuple[str, ...]:
        return tuple(prompt for group in self.prompts for prompt in group)

    @property
    def prompt_owner(self) -> tuple[int, ...]:
        """For each prompt of `all_prompts`, the index of its category."""
        return tuple(index for index, group in enumerate(self.prompts) for _ in group)

    def warnings(self) -> list[str]:
        """Advice that does not stop a run: at most one note, a sentence for each kind of advice."""
        sentences = [
            self._doubled_prompt_advice(),
            self._single_word_advice(),
            self._long_label_advice(),
            self._lookalike_advice(),
        ]
        return [" ".join(sentence for sentence in sentences if sentence)] if any(sentences) else []

    def _single_word_advice(self) -> str:
        single_words = [category for category in self.categories if len(category.split()) == 1]
        if self.template is None or not single_words:
            return ""
        one = len(single_words) == 1
        advice = (
            f"{'A single-word label' if one else 'Single-word labels'} ({_listed(single_words)}) often"
            f" {'sorts' if one else 'sort'} worse than short descriptions with context"
        )
        examples = [word for word in single_words if len(word) > 1 and word.casefold() not in ARTICLES]
        if examples:
            example = _with_article(examples[0])
            advice += f", such as '{example} in a street' or 'a close-up of {example}'"
        return advice + "."

    def _doubled_prompt_advice(self) -> str:
        """Labels that say "a photo of" filled into a template that says it too."""
        if self.template is None or not _PHOTO_WORD.search(self.template.split("{}")[0]):
            return ""
        doubled = [category for category in self.categories if _PHOTO_OF.match(category)]
        if not doubled:
            return ""
        bare = _PHOTO_OF.sub("", doubled[0]).strip()
        one = len(doubled) == 1
        return (
            f"{'The label' if one else 'The labels'} {_listed(doubled)} already {'says' if one else 'say'} what"
            f" the template {self.template!r} says, so the prompt doubles: {self.template.format(doubled[0])!r}."
            f" Drop those words from the label{'' if one else 's'}"
            + (f" ({doubled[0]!r} -> {bare!r})" if bare else "")
            + ', or set the template to "{}" to use the labels as written.'
        )

    def _long_label_advice(self) -> str:
        long = []
        for category, group in zip(self.categories, self.prompts):
            long += [text for text in dict.fromkeys((category, *group)) if len(text) > LONG_LABEL_CHARS][:1]
        if not long:
            return ""
        shown = _listed(long)
        lengths = " and ".join(str(len(text)) for text in long[:3]) + (" and more" if len(long) > 3 else "")
        return (
            f"{'The label' if len(long) == 1 else 'The labels'} {shown} {'is' if len(long) == 1 else 'are'}"
            f" {lengths} characters long; CLIP-style models read about 77 tokens, so keep labels under"
            f" {LONG_LABEL_CHARS} characters."
        )

    def _lookalike_advice(self) -> str:
        pairs = lookalike_folders(self.placed_categories)
        if not pairs:
            return ""
        described = "; ".join(f"{first!r} and {second!r} ({why})" for first, second, why in pairs)
        return (
            f"These labels get folders whose names look the same but are written with other characters:"
            f" {described}; rename one of each pair unless both are meant."
        )

    def as_dict(self) -> dict[str, object]:
        """The labels as a labels file would hold them."""
        described = {}
        for index, (category, group) in enumerate(zip(self.categories, self.prompts)):
            extra = {"threshold": self.threshold_of(index, None)} if self.threshold_of(index, None) is not None else {}
            extra.update({"negative": True} if self.is_negative(index) else {})
            described[category] = {"prompts": list(group), **extra} if extra else list(group)
        return described

    def threshold_of(self, index: int, default: float | None) -> float | None:
        """Category `index`'s own threshold, else the run's."""
        own = self.thresholds[index] if self.thresholds else None
        return default if own is None else own

    @property
    def has_thresholds(self) -> bool:
        return any(value is not None for value in self.thresholds)

    def is_negative(self, index: int) -> bool:
        return bool(self.negatives) and self.negatives[index]

    @property
    def placed_categories(self) -> tuple[str, ...]:
        """The categories that get a folder: all but the negative ones."""
        return tuple(c for index, c in enumerate(self.categories) if not self.is_negative(index))

    @property
    def needs_uncertain(self) -> bool:
        return self.has_thresholds or any(self.negatives)


def _clean(text: object, where: str) -> str:
    if not isinstance(text, str):
        raise LabelError(f"{where} must be text; got {text!r}.")
    return unicodedata.normalize("NFC", text).strip()


def _check_categories(categories: Sequence[str], minimum: int = 2) -> None:
    if minimum == 1 and not any(categories):
        raise LabelError('No object to look for was given; name at least one, as in "a rifle, a flag".')
    if any(not category for category in categories):
        raise LabelError('A label is empty: check for a doubled or trailing comma, as in "cat,,dog" or "cat,dog,".')
    seen: dict[str, str] = {}
    for category in categories:
        key = category.casefold()
        if key in seen:
            raise LabelError(f"The label {category!r} is repeated ({seen[key]!r}); each category must be distinct.")
        seen[key] = category
    if len(categories) < minimum:
        raise LabelError(
            f"At least two labels are needed to sort; got {len(categories)}"
            + (f" ({categories[0]!r})" if categories else "")
            + '. Separate labels with commas, as in "cat,dog".'
        )


def labels_from_list(labels: Sequence[object], template: str, minimum: int = 2) -> LabelSet:
    """Labels each filled into `template` (the pipeline's way)."""
    categories = [_clean(label, "A label") for label in labels]
    _check_categories(categories, minimum)
    prompts = tuple((template.format(category),) for category in categories)
    return LabelSet(tuple(categories), prompts, template)


def _threshold(value: object, category: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise LabelError(f"The threshold of {category!r} must be a number between 0 and 1; got {value!r}.")
    return float(value)


def labels_from_mapping(mapping: Mapping[str, object], minimum: int = 2) -> LabelSet:
    """Category -> prompt, list of prompts, or {"prompts": [...], "threshold": 0.4, "negative": false}.

    Prompts are used as written. A negative category ("none of these") gets no folder: a file whose
    best category is negative goes to uncertain/.
    """
    categories: list[str] = []
    prompts: list[tuple[str, ...]] = []
    thresholds: list[float | None] = []
    negatives: list[bool] = []
    for raw_category, raw_prompts in mapping.items():
        category = _clean(raw_category, "A category name")
        threshold, negative = None, False
        if isinstance(raw_prompts, Mapping):
            unknown = set(raw_prompts) - {"prompts", "threshold", "negative"}
            if unknown:
                raise LabelError(
                    f"The category {category!r} has unknown keys {sorted(unknown)}; use prompts, threshold, negative."
                )
            threshold = _threshold(raw_prompts.get("threshold"), category)
            negative = raw_prompts.get("negative", False)
            if not isinstance(negative, bool):
                raise LabelError(f"'negative' of {category!r} must be true or false; got {negative!r}.")
            raw_prompts = raw_prompts.get("prompts", [])
        items = [raw_prompts] if isinstance(raw_prompts, str) else raw_prompts
        if not isinstance(items, Sequence) or not items:
            raise LabelError(f"The category {category!r} needs at least one prompt (a text or a list of texts).")
        group = tuple(_clean(item, f"A prompt of {category!r}") for item in items)
        if any(not prompt for prompt in group):
            raise LabelError(f"The category {category!r} has an empty prompt.")
        categories.append(category)
        prompts.append(group)
        thresholds.append(threshold)
        negatives.append(negative)
    _check_categories(categories, minimum)
    if all(negatives):
        raise LabelError("Every category is marked negative; at least one must be a real label to sort into.")
    owner: dict[str, str] = {}
    for category, group in zip(categories, prompts):
        for prompt in group:
            if owner.setdefault(prompt, category) != category:
                raise LabelError(
                    f"The prompt {prompt!r} belongs to both {owner[prompt]!r} and {category!r}; keep it in one."
                )
    return LabelSet(tuple(categories), tuple(prompts), None, tuple(thresholds), tuple(negatives))


def read_labels_file(path: Path, minimum: int = 2) -> LabelSet:
    """A JSON or YAML file mapping each category to its prompts."""
    data = read_data_file(path, "labels file", LabelError)
    if not isinstance(data, Mapping):
        raise LabelError(
            f"The labels file {str(path)!r} must map each category to its prompts, as in"
            ' {"cat": ["a photo of a cat"], "dog": ["a photo of a dog"]}.'
        )
    return labels_from_mapping(data, minimum)


def labels_from_text(text: str, template: str, minimum: int = 2) -> LabelSet:
    """Labels as typed in a text box: one line is a comma list; several lines are one category each,
    as `category` (filled into the template) or `category: prompt; another prompt` (used as written)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return labels_from_list(text.split(","), template, minimum)
    described = [line.partition(":") for line in lines]
    if not any(colon for _, colon, _ in described):
        return labels_from_list(lines, template, minimum)
    mapping: dict[str, object] = {}
    for category, _, prompts in described:
        category = category.strip()
        if category.casefold() in (key.casefold() for key in mapping):
            _check_categories([*mapping, category])  # names the repeated category
        written = [prompt.strip() for prompt in prompts.split(";") if prompt.strip()]
        mapping[category] = written or [template.format(category)]
    return labels_from_mapping(mapping, minimum)


def parse_labels(labels: str | Mapping[str, object] | LabelSet | Path, template: str, *, minimum: int = 2) -> LabelSet:
    """Any form a user may give labels in, as a LabelSet; `minimum` categories (1 for objects to detect)."""
    if isinstance(labels, LabelSet):
        return labels
    if isinstance(labels, Path):
        return read_labels_file(labels, minimum)
    if isinstance(labels, Mapping):
        return labels_from_mapping(labels, minimum)
    if isinstance(labels, str):
        return labels_from_text(labels, template, minimum)
    if isinstance(labels, Sequence):
        return labels_from_list(labels, template, minimum)
    raise LabelError(f"Labels must be a comma-separated text, a list, or a mapping; got {type(labels).__name__}.")
