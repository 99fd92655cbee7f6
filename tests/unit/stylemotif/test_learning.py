"""Learning evidence (the paper's SRA analogue) on procedural data with tiny models.

A classifier trained on the generator's real clips judges generated motion: unstylized samples
from content captions carry no particular style (about chance, 1/5); stylized samples (same text,
same seeds, a style motion of the requested style fused with gamma = 0.6) are recognised as the
requested style clearly above chance while the content named by the text is kept.
"""
import pytest
import torch

from stylemotif.classifier import MotionClassifier
from stylemotif.datasets import procedural_set
from stylemotif.pipeline import train_procedural
from stylemotif.procedural import CAPTIONS, CONTENTS, STYLES
from stylemotif.training import train_classifier


@pytest.mark.slow
def test_stylized_generation_recognised_as_the_requested_style():
    model, data, embed = train_procedural(n_clips=500, seed=0)
    test = procedural_set(100, frames=model.config.frames, seed=1)
    styles = list(STYLES)
    torch.manual_seed(0)
    clf = MotionClassifier(len(CONTENTS), len(STYLES))
    train_classifier(clf, model.normalizer, data, list(CONTENTS), styles, 300)
    content = torch.tensor([CONTENTS.index(c) for c in test.content])
    real = clf.accuracy(model.normalizer.normalize(test.features), content, torch.tensor([styles.index(s) for s in test.style]))
    assert real[0] > 0.95 and real[1] > 0.9  # the judge itself is reliable

    n = len(test)
    target = torch.arange(n) % len(styles)  # requested style per sample, balanced
    refs = [[j for j, s in enumerate(test.style) if s == styles[target[i]]][i % 5] for i in range(n)]
    style = model.encode_style(test.features[refs])
    text = embed([CAPTIONS[c][0] for c in test.content])[:, None]
    null = embed([""])[:, None]
    plain = model.generate(text, null, steps=20, seed=0, guidance=2.5)
    stylized = model.generate(text, null, style=style, gamma=0.6, steps=20, seed=0, guidance=2.5)
    plain_acc = clf.accuracy(model.normalizer.normalize(plain), content, target)
    sty_acc = clf.accuracy(model.normalizer.normalize(stylized), content, target)
    print(f"\n[stylemotif SRA] real clips content/style {real}; plain {plain_acc}; stylized (gamma 0.6) {sty_acc}")
    assert plain_acc[0] > 0.85 and sty_acc[0] > 0.85  # content kept
    assert sty_acc[1] >= 0.30  # chance is 0.20
    assert sty_acc[1] >= plain_acc[1] + 0.10
