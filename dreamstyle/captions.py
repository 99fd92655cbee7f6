"""Rule-based style stripper: a style caption t_sty -> the style-free caption t_ns.

DreamStyle "Data Construction Pipeline": t_ns describes the video without style, palette, texture
and tone. The rules (English; other scripts pass through unchanged):

1. Mark style vocabulary: the phrases of STYLE, PALETTE, TEXTURE and TONE (longest first; a hyphen
   counts as a space), "style"/"style of <Name Name>", a colour noun (COLOUR_NOUNS: "colours",
   "tones", ...) right after a modifier or style word ("pastel colours", "warm tones"), and
   MODIFIERS (colour names, numbers, "bold", "soft", ...) directly before a marked word.
2. Spans of marked words separated only by FUNCTION words ("in", "with", "and", ...) merge.
3. A clause (text between , ; : . ! ? — or brackets) left with no content word is dropped whole.
4. In a kept clause each span goes, with the connector before it ("in", "with", "as", "rendered"
   ...) and an article before it when nothing content-bearing follows, or "of" when it heads the
   phrase of its clause ("a watercolor painting of a cat" -> "a cat"). An "a"/"an" before a removed adjective is
   re-chosen for the new next word. EXTRA words given by the caller count as STYLE.
"""
import re
from dataclasses import dataclass

STYLE = (
    "style", "styled", "stylized", "stylised", "aesthetic", "art style", "artwork", "art", "artistic",
    "painting", "painted", "drawing", "drawn", "illustration", "illustrated", "sketch", "sketched", "sketchy",
    "doodle", "render", "rendered", "rendering", "3d render", "cgi", "digital art", "concept art", "poster",
    "watercolor", "watercolour", "oil painting", "oil paint", "acrylic", "gouache", "pastel", "pastels",
    "charcoal", "pencil", "graphite", "crayon", "ink", "ink wash", "pen", "pen and ink", "marker", "sumi-e",
    "ukiyo-e", "woodcut", "woodblock", "linocut", "etching", "engraving", "lithograph", "screen print", "woodblock print", "art print",
    "mosaic", "stained glass", "collage", "papercut", "origami", "pixel art", "8-bit", "16-bit", "voxel",
    "low-poly", "low poly", "claymation", "stop motion", "anime", "manga", "cartoon", "cartoonish", "comic",
    "comic book", "cel-shaded", "cel shading", "chibi", "ghibli", "studio ghibli", "pixar", "disney",
    "vaporwave", "synthwave", "cyberpunk", "steampunk", "art nouveau", "art deco", "baroque", "rococo",
    "renaissance", "impressionist", "impressionism", "expressionist", "expressionism", "cubist", "cubism",
    "surrealist", "surrealism", "pop art", "pop-art", "minimalist", "minimalism", "abstract", "psychedelic",
    "gothic", "noir", "film noir", "vintage", "retro", "line art", "lineart", "line drawing", "halftone",
    "hatching", "hatched", "cross-hatched", "cross-hatching", "stippling", "stippled", "pointillism",
    "pointillist", "thermal camera", "thermal", "infrared", "posterized", "posterised", "graffiti",
    "tattoo", "blueprint", "neon sign", "hand-drawn", "hand drawn", "storybook", "fantasy art", "photorealistic",
)
PALETTE = (
    "palette", "colour palette", "color palette", "colour scheme", "color scheme", "monochrome",
    "monochromatic", "black and white", "black-and-white", "grayscale", "greyscale", "sepia", "duotone",
    "tritone", "false-colour", "false-color", "false colour", "false color", "neon", "technicolor",
    "colourful", "colorful", "saturated", "desaturated", "undersaturated", "oversaturated",
)
TEXTURE = (
    "texture", "textured", "textures", "brush strokes", "brushstrokes", "brush stroke", "brushwork", "strokes",
    "impasto", "canvas", "paper", "grain", "grainy", "film grain", "dots", "dotted", "outlines", "outline",
    "linework", "line work", "lines", "shading", "shaded", "cel", "washes", "splatter", "splatters",
    "matte", "glossy", "gritty",
)
TONE = (
    "tone", "tones", "tonal", "mood", "moody", "dreamy", "dreamlike", "whimsical", "melancholic",
    "melancholy", "gloomy", "ethereal", "nostalgic", "cozy", "eerie", "serene", "ominous", "atmospheric",
    "dramatic lighting", "cinematic lighting", "high contrast", "high-contrast", "low contrast", "vibe",
    "vibes",
)
COLOUR_NOUNS = ("colour", "colours", "color", "colors", "hue", "hues", "shades", "tints", "lighting", "light")
MODIFIERS = (
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "magenta", "cyan", "teal",
    "brown", "black", "white", "grey", "gray", "gold", "golden", "silver", "cream", "beige", "crimson",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "single",
    "bold", "soft", "thick", "thin", "flat", "limited", "heavy", "loose", "fine", "delicate", "strong",
    "subtle", "rich", "deep", "bright", "vivid", "vibrant", "muted", "pale", "warm", "cool", "cold", "dark",
    "light", "earthy", "rough", "smooth", "clean", "crisp", "harsh", "gentle", "classic", "traditional",
    "japanese", "chinese", "european", "modern", "digital", "hand", "pop", "naive", "graphic", "visible",
    "expressive", "painterly", "dramatic", "cinematic", "stark", "high", "low", "glowing",
)
FUNCTION = ("a", "an", "the", "in", "with", "as", "of", "and", "or", "&", "using", "featuring", "like", "on",
            "via", "through", "by", "into", "its", "their", "his", "her", "-", "/", "'s")
CONNECTORS = ("in", "with", "as", "using", "featuring", "like", "via", "on", "through", "into", "and")
ARTICLES = ("a", "an", "the")
CLAUSE_BREAKS = ",;:.!?()[]—–"

_TOKEN = re.compile(r"\s*([^\W_]+(?:['’][^\W_]+)*|\S)")


@dataclass(frozen=True)
class StripResult:
    text: str      # the style-free caption
    removed: tuple  # the style phrases taken out, in order


@dataclass
class _Tok:
    text: str
    space: str  # whitespace before the token in the input
    low: str
    style: bool = False
    drop: bool = False


def _phrases(words):
    return sorted({tuple(p.lower().replace("-", " ").split()) for p in words}, key=len, reverse=True)


_VOCAB = _phrases(STYLE + PALETTE + TEXTURE + TONE)


def strip_style(caption, extra=()):
    """StripResult for CAPTION (a t_sty): style, palette, texture and tone phrases taken out."""
    if not isinstance(caption, str):
        raise TypeError(f"caption: expected a string, got {type(caption).__name__}")
    toks = [_Tok(m.group(1), m.group(0)[:m.start(1) - m.start(0)], m.group(1).lower().replace("’", "'"))
            for m in _TOKEN.finditer(caption)]
    vocab = _phrases(extra) + _VOCAB if extra else _VOCAB
    _mark_vocabulary(toks, vocab)
    _mark_style_of_names(toks)
    _mark_colour_nouns_and_modifiers(toks)
    removed = []
    for clause in _clauses(toks):
        spans = _spans(clause)
        if not spans:
            continue
        if not any(_is_content(t) for t in clause if not t.style):
            removed.append(_join([t for t in clause if t.text not in CLAUSE_BREAKS]).strip())
            for t in clause:
                t.drop = t.text not in ".!?"
            continue
        for lo, hi in spans:
            before = [t.drop for t in clause]
            _drop_span(clause, lo, hi)
            removed.append(_join([t for t, was in zip(clause, before) if t.drop and not was]).strip())
    text = _rebuild(toks, caption)
    return StripResult(text, tuple(r for r in removed if r))


def _mark_vocabulary(toks, vocab):
    idx = [i for i, t in enumerate(toks) if t.text != "-"]
    lows = [toks[i].low for i in idx]
    k = 0
    while k < len(idx):
        for phrase in vocab:
            n = len(phrase)
            if tuple(lows[k:k + n]) == phrase:
                for i in range(idx[k], idx[k + n - 1] + 1):
                    toks[i].style = True
                k += n
                break
        else:
            k += 1


def _mark_style_of_names(toks):
    """"style of Claude Monet", "Van Gogh style": capitalised words next to "style" are a name."""
    for i, t in enumerate(toks):
        j = i - 1
        while t.low == "style" and j >= 0 and (toks[j].text[:1].isupper() or toks[j].text == "-"):
            toks[j].style = True
            j -= 1
        if t.low == "style" and i + 1 < len(toks) and toks[i + 1].low == "of":
            toks[i + 1].style = True
            j = i + 2
            while j < len(toks) and (toks[j].text[:1].isupper() or toks[j].low in ("van", "de", "da", "von", "-")):
                toks[j].style = True
                j += 1


def _mark_colour_nouns_and_modifiers(toks):
    for i, t in enumerate(toks):
        prev = _prev_word(toks, i)
        if t.low in COLOUR_NOUNS and not t.style and prev is not None and (
                toks[prev].style or toks[prev].low in MODIFIERS or toks[prev].low.isdigit()):
            t.style = True
    for i in range(len(toks) - 1, -1, -1):  # right to left, so modifier chains join
        if toks[i].style:
            j = _prev_word(toks, i)
            while j is not None and (toks[j].low in MODIFIERS or toks[j].low.isdigit()) and not toks[j].style:
                for k in range(j, i):
                    toks[k].style = True
                j = _prev_word(toks, j)


def _prev_word(toks, i):
    j = i - 1
    while j >= 0 and toks[j].text == "-":
        j -= 1
    return j if j >= 0 and toks[j].text not in CLAUSE_BREAKS else None


def _clauses(toks):
    """Runs of tokens, each ending with its break; an opening bracket starts a clause."""
    clause = []
    for t in toks:
        if t.text in "([" and clause:
            yield clause
            clause = []
        clause.append(t)
        if t.text in CLAUSE_BREAKS and t.text not in "([":
            yield clause
            clause = []
    if clause:
        yield clause


def _spans(clause):
    """(lo, hi) of runs of style tokens; runs separated only by function words are one span."""
    spans = []
    for i, t in enumerate(clause):
        if not t.style:
            continue
        if spans and all(clause[k].low in FUNCTION for k in range(spans[-1][1] + 1, i)):
            spans[-1][1] = i
        else:
            spans.append([i, i])
    for s in spans:
        for k in range(s[0], s[1] + 1):
            clause[k].style = True
    return spans


def _is_content(t):
    return t.text not in CLAUSE_BREAKS and t.low not in FUNCTION and any(c.isalnum() for c in t.text)


def _drop_span(clause, lo, hi):
    for k in range(lo, hi + 1):
        clause[k].drop = True
    nxt = next((k for k in range(hi + 1, len(clause)) if clause[k].text not in CLAUSE_BREAKS), None)
    followed_by_content = nxt is not None and _is_content(clause[nxt])
    j = lo - 1
    if nxt is not None and clause[nxt].low == "of" and all(not _is_content(t) for t in clause[:lo]):
        for k in range(lo):  # "a watercolor painting of a cat" -> "a cat"
            clause[k].drop = clause[k].text not in CLAUSE_BREAKS
        clause[nxt].drop = True
        return
    if followed_by_content:  # adjective use: "an anime girl" -> "a girl"
        if j >= 0 and clause[j].low in ("a", "an"):
            clause[j].text = _article(clause[nxt].text, clause[j].text)
        return
    while j >= 0 and clause[j].low in ARTICLES:
        clause[j].drop = True
        j -= 1
    if j >= 0 and clause[j].low in CONNECTORS + ("rendered", "painted", "drawn", "shown", "depicted", "done"):
        clause[j].drop = True


def _article(word, old):
    an = word[:1].lower() in "aeiou"
    new = "an" if an else "a"
    return new.capitalize() if old[:1].isupper() else new


def _join(toks):
    return "".join(t.space + t.text for t in toks)


def _rebuild(toks, caption):
    out = []
    for t in (t for t in toks if not t.drop):  # of two breaks in a row keep the stronger; none at the start
        if t.text in ",;:—–.!?" and (not out or out[-1].text in ",;:—–.!?"):
            if out and t.text in ".!?" and out[-1].text in ",;:—–":
                out[-1] = t
            continue
        out.append(t)
    while out and out[-1].text in ",;:—–":
        out.pop()
    text = "".join((" " if t.space and i else "") + t.text for i, t in enumerate(out))
    text = re.sub(r"\s+([,;:.!?)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text).strip()
    if caption[:1].isupper() and text[:1].islower():
        text = text[0].upper() + text[1:]
    return text


def style_words_in(caption, extra=()):
    """The phrases of the documented vocabulary (STYLE, PALETTE, TEXTURE, TONE and EXTRA) that CAPTION
    contains, in order: a t_ns must contain none (DreamStyle: t_ns excludes style, palette, texture, tone)."""
    if not isinstance(caption, str):
        raise TypeError(f"caption: expected a string, got {type(caption).__name__}")
    toks = [_Tok(m.group(1), "", m.group(1).lower().replace("’", "'")) for m in _TOKEN.finditer(caption)]
    _mark_vocabulary(toks, _phrases(extra) + _VOCAB if extra else _VOCAB)
    found, run = [], []
    for t in toks + [_Tok("", "", "")]:
        if t.style:
            run.append(t.text)
        elif run:
            found.append(" ".join(w for w in run if w != "-"))
            run = []
    return tuple(found)
