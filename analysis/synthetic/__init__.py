"""Synthetic trials: fill a live trial with realistic, clearly marked synthetic participants.

For tests, benchmarks and trying out analyses before real data exist. Every participant made
here has ``is_synthetic=True`` (exports carry the flag). What is generated follows the trial's
own definition: its stages and time limits, baseline questions and eligibility rules, strata,
arms and their real randomization, tasks (starter and reference solution), quiz (keys, points,
categories, attention checks, graded with the real grading rules) and surveys.

The effects are set by :class:`SyntheticEffects`:

* Quiz: every item is answered from a latent ability ``theta ~ N(shift_arm, 1)`` with a
  two-parameter logistic item model. The item discrimination and difficulty are calibrated
  (exactly, by Gauss-Hermite quadrature over theta) so that the reference arm scores
  ``reference_quiz_percent`` of the points on average with a spread of ``quiz_sd_percent``,
  and the shift of every other arm is solved so that the population Cohen's d of the total
  score is ``quiz_d``. A sample's realised d scatters around it (SE about sqrt(2/n_per_arm)).
* Completion time of the main task stage: log-normal, with the reference arm's median set
  so that ``censor_rate`` of it reaches the time limit (censored: the stage times out with a
  task not yet passed); every other arm's times are scaled to be ``speed_gain_min`` minutes
  faster on average. Time and quiz ability share a person effect (faster people score a
  little higher), so the warm-up time is a useful covariate.

Randomization is the trial's own: allocations follow ``trials.randomization`` exactly as
``trials.services.allocation_assign`` does, in order of allocation time, under a lock on the
trial's sequence rows, and ``AllocationSequence.next_index`` is advanced, so real
participants enrolled afterwards continue the same sequences.

Speed: nothing is saved row by row. Rows go in batches of 5,000: with COPY on PostgreSQL
(events straight from tuples, without model instances), with one prepared INSERT per batch
(``executemany``) on SQLite, and with ``bulk_create`` for the two tables whose new keys the
events quote (runs, assistant turns). Every value is written as generated, including the
timestamps Django would otherwise stamp itself (``auto_now_add``: ``created_at``,
``server_time``): COPY and the prepared INSERT take the values as converted by each field,
and :class:`_AsGiven` runs ``bulk_create`` in "raw" mode, the mode Django loads fixtures in
("save the instance exactly as presented"). No model field is changed, even briefly, so other
threads are unaffected. On PostgreSQL, outside a transaction, a second thread writes one
batch while the next is generated. 10,000 participants with 200 events each (2 million
events) take about three minutes on a small, busy machine; see the command's output.

Randomness: one ``numpy.random.Generator(seed)`` draws everything about the population; each
participant's details (events, code, answers) come from a ``random.Random`` stream seeded
from it (scalar draws are much faster there), so the same seed gives the same data whatever
the batch size. Arms depend on the trial's own (secret) randomization seed as well. Opaque
identifiers (participant ids, blind ids of answers) are random as everywhere else; they are
not part of the data's content.

The package: ``model`` (pure: effects, the item model and its calibration, answer
sampling), ``world`` (the trial as the generator sees it), ``population`` (who enrolls, is
allocated and goes where), ``timelines`` (one participant's rows), ``writer`` (bulk writes and
the background writer), ``run`` (``synthesize_trial``).
"""

from analysis.synthetic.model import (
    FlowRates,
    SyntheticEffects,
    SyntheticError,
    SyntheticProgress,
    SyntheticSummary,
)
from analysis.synthetic.run import synthesize_trial

__all__ = [
    "FlowRates",
    "SyntheticEffects",
    "SyntheticError",
    "SyntheticProgress",
    "SyntheticSummary",
    "synthesize_trial",
]
