"""Translation metrics with sacrebleu (Post 2018, "A Call for Clarity in Reporting BLEU Scores"): corpus
BLEU (Papineni et al. 2002) and chrF (Popović 2015) against one or more references per sentence.

sacrebleu tokenizes the detokenized text itself (its default `13a` tokenizer for BLEU), so scores are
comparable with published ones; its signature string says exactly how they were computed.
"""

from __future__ import annotations

from collections.abc import Sequence


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float | str]:
    """Corpus BLEU and chrF of `hypotheses` (N,); `references[i]` are all references of sentence i
    (any number ≥ 1 each)."""
    import sacrebleu  # only evaluation needs it

    if len(hypotheses) != len(references) or any(not refs for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    n_refs = max(len(refs) for refs in references)
    # sacrebleu wants one stream per reference slot; None marks a sentence with fewer references
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(n_refs)]
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), streams)  # type: ignore[arg-type]
    chrf_score = chrf.corpus_score(list(hypotheses), streams)  # type: ignore[arg-type]
    return {
        "bleu": float(bleu_score.score),
        "chrf": float(chrf_score.score),
        "bleu_signature": str(bleu.get_signature()),
    }
