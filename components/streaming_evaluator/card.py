"""The model card's streaming section: false accepts per hour and false rejects, with what the streams were."""

from __future__ import annotations

from typing import Any, Dict, List


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def card_section(report: Dict[str, Any]) -> str:
    """Markdown for a StreamingEvaluator report (``streaming_report.json``)."""
    s, point, comp, br = report["settings"], report["operating_point"], report["composition"], report["breakdown"]
    minutes = comp["audio_seconds"] / 60
    if comp.get("synthetic"):
        made_of = (f"{minutes:.1f} min of SYNTHETIC audio in {comp['streams']} streams: {comp['description']} "
                   f"{comp['keyword_occurrences']} keyword occurrences, {comp['other_speech']} other utterances.")
    else:
        made_of = (f"{minutes:.1f} min of recordings ({comp.get('recordings', '?')}), {comp['streams']} file(s), "
                   f"{comp['keyword_occurrences']} labelled keyword occurrences.")
    lines: List[str] = [
        "## Streaming (continuous audio, TFLite Micro)",
        made_of,
        f"- detection: micro_speech RecognizeCommands, threshold {point['threshold']}, averaging window "
        f"{s['average_window_ms']} ms, suppression {s['suppression_ms']} ms, minimum count {s['minimum_count']}; "
        f"inference every {s['inference_stride_ms']} ms ({s['inference_stride_source']}); see postprocessing.h",
        f"- false accepts per hour: {point['false_accepts_per_hour']:.2f} ({point['false_accepts']} in {minutes:.1f} "
        f"min; 95% upper bound {point['false_accepts_per_hour_upper_95']:.2f}); required at most "
        f"{report['requirements']['max_false_accepts_per_hour']:g}",
        f"- false-reject rate: {point['false_reject_rate']:.3f} ({point['misses']} of {point['keyword_occurrences']} "
        f"missed); required at most {report['requirements']['max_false_reject_rate']:g}",
        f"- detection delay after the keyword's end: median {_ms(br['delay']['median_ms'])}, "
        f"90th percentile {_ms(br['delay']['p90_ms'])}",
        f"- verdict: {'blessed' if report['blessed'] else 'NOT blessed: ' + '; '.join(report['refusals'])}",
        "",
        "| keyword | occurrences | false-reject rate | false accepts | median delay |", "|---|---|---|---|---|",
    ]
    for keyword, k in br["per_keyword"].items():
        frr = "n/a" if k["false_reject_rate"] is None else f"{k['false_reject_rate']:.3f}"
        lines.append(f"| {keyword} | {k['occurrences']} | {frr} | {k['false_accepts']} | {_ms(k['median_ms'])} |")
    if br["per_snr_db"]:
        lines += ["", "False-reject rate by SNR: " + ", ".join(
            f"{snr} dB {v['false_reject_rate']:.3f} ({v['occurrences']})" for snr, v in br["per_snr_db"].items())]
    return "\n".join(lines) + "\n"


def insert_section(model_card: str, report: Dict[str, Any]) -> str:
    """``model_card`` with the streaming section before its limitations (or at its end)."""
    section = card_section(report)
    marker = "\n## Limitations"
    if marker in model_card:
        head, tail = model_card.split(marker, 1)
        return head.rstrip("\n") + "\n\n" + section + marker + tail
    return model_card.rstrip("\n") + "\n\n" + section
