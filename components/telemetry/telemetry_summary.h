/* Device telemetry: the periodic summary a keyword-spotting or motion device keeps in fixed memory.
 *
 * Everything is integer arithmetic on what the model already sees (its int8 input features and int8
 * output scores), so the summary costs a few adds per frame and per inference, no floating point
 * until the period ends, and gives bit-for-bit the figures the pipeline computes from the same data
 * (components/telemetry/summary.py mirrors this file; a test compiles it with g++ and compares).
 *
 *   TelemetrySummary s;
 *   telemetry_summary_reset(&s, kChannels, kCategoryCount);
 *   telemetry_summary_add_frame(&s, frame);            // each new int8 feature frame (kChannels values)
 *   telemetry_summary_add_window(&s, scores);          // each inference's int8 output (kCategoryCount values)
 *   telemetry_summary_add_detection(&s, class_index);  // each command RecognizeCommands reports
 *   telemetry_summary_add_confirmation(&s, class_index);  // each of those the application saw confirmed
 *   // at the end of the period: telemetry_summary_mean/variance per channel, then send and reset.
 *
 * A confirmation is the application's evidence that a detected command was meant: the user acted
 * on its result (a follow-up command, a button press, the next step of a dialogue). What counts is
 * the product's rule; a false accept with nobody there is rarely confirmed. Devices whose
 * application has such a signal send `confirmed` (even when all zero); the canary gate then
 * compares confirmed commands, not raw detections, which count false accepts as commands.
 * Devices without one leave the field out of the record.
 *
 * Memory: sums are int64 (an int8 squared is at most 16384: 5.6e14 frames before an overflow),
 * about 16 * TELEMETRY_MAX_CHANNELS + 12 * TELEMETRY_MAX_CLASSES + 4 * TELEMETRY_SCORE_BINS bytes.
 */
#ifndef TINYML_TFX_TELEMETRY_SUMMARY_H_
#define TINYML_TFX_TELEMETRY_SUMMARY_H_

#include <stdint.h>

#ifndef TELEMETRY_MAX_CHANNELS
#define TELEMETRY_MAX_CHANNELS 64
#endif
#ifndef TELEMETRY_MAX_CLASSES
#define TELEMETRY_MAX_CLASSES 32
#endif
/* The top score's histogram: 16 bins of 16 over the int8 range (bin = (score + 128) >> 4). */
#define TELEMETRY_SCORE_BINS 16
#define TELEMETRY_SCORE_BIN_SHIFT 4

typedef struct {
  int32_t channels;
  int32_t classes;
  uint32_t frames;                                   /* feature frames summed */
  uint32_t windows;                                  /* inferences */
  int64_t feature_sum[TELEMETRY_MAX_CHANNELS];
  int64_t feature_sum_squares[TELEMETRY_MAX_CHANNELS];
  uint32_t top_class_counts[TELEMETRY_MAX_CLASSES];  /* inferences per arg-max class */
  uint32_t detections[TELEMETRY_MAX_CLASSES];        /* commands recognised per class */
  uint32_t confirmed[TELEMETRY_MAX_CLASSES];         /* of those, confirmed by the application */
  uint32_t score_histogram[TELEMETRY_SCORE_BINS];    /* inferences per bin of the top score */
} TelemetrySummary;

/* Starts a period; returns 0, or -1 when the counts exceed the compiled limits. */
static inline int telemetry_summary_reset(TelemetrySummary* s, int32_t channels, int32_t classes) {
  if (channels < 1 || channels > TELEMETRY_MAX_CHANNELS || classes < 1 || classes > TELEMETRY_MAX_CLASSES) return -1;
  uint8_t* bytes = (uint8_t*)s;
  for (uint32_t i = 0; i < sizeof(*s); ++i) bytes[i] = 0;
  s->channels = channels;
  s->classes = classes;
  return 0;
}

static inline void telemetry_summary_add_frame(TelemetrySummary* s, const int8_t* frame) {
  for (int32_t c = 0; c < s->channels; ++c) {
    const int64_t v = frame[c];
    s->feature_sum[c] += v;
    s->feature_sum_squares[c] += v * v;
  }
  s->frames += 1;
}

/* Counts one inference: its arg-max class (the first on a tie) and the bin of its top score. */
static inline void telemetry_summary_add_window(TelemetrySummary* s, const int8_t* scores) {
  int32_t top = 0;
  for (int32_t k = 1; k < s->classes; ++k) {
    if (scores[k] > scores[top]) top = k;
  }
  s->top_class_counts[top] += 1;
  s->score_histogram[((int32_t)scores[top] + 128) >> TELEMETRY_SCORE_BIN_SHIFT] += 1;
  s->windows += 1;
}

static inline void telemetry_summary_add_detection(TelemetrySummary* s, int32_t class_index) {
  if (class_index >= 0 && class_index < s->classes) s->detections[class_index] += 1;
}

/* Counts a confirmation of a command this period detected; never more than its detections. A confirmation
 * that comes after the period was sent and reset counts only against the new period's detections of the
 * class (or not at all): confirm within the period, or hold the period open for the confirmation window. */
static inline void telemetry_summary_add_confirmation(TelemetrySummary* s, int32_t class_index) {
  if (class_index >= 0 && class_index < s->classes && s->confirmed[class_index] < s->detections[class_index]) {
    s->confirmed[class_index] += 1;
  }
}

/* The period's mean of channel c (0 without frames). */
static inline double telemetry_summary_mean(const TelemetrySummary* s, int32_t c) {
  return s->frames ? (double)s->feature_sum[c] / (double)s->frames : 0.0;
}

/* The period's population variance of channel c, from the integer sums (exact until the division). */
static inline double telemetry_summary_variance(const TelemetrySummary* s, int32_t c) {
  if (!s->frames) return 0.0;
  const double n = (double)s->frames;
  const double centred = (double)s->feature_sum_squares[c] * n - (double)s->feature_sum[c] * (double)s->feature_sum[c];
  return centred / (n * n);
}

#endif  /* TINYML_TFX_TELEMETRY_SUMMARY_H_ */
