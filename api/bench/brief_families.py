"""The task families `kgmem bench briefs` writes its orchestration history from.

Each family is one kind of data or AI work with:

- `history`: task templates the seeded history is written from;
- `held_out`: other templates, worded differently (synonyms, other sentence shapes, the goal
  instead of the method), that only the briefs under test use, so a brief is never asked about
  a task it has seen;
- `lessons`: what the team learned doing that work (recorded with outcomes), distinct from one
  another; `fresh`: lessons that first appear in the closed-loop step (a new failure);
- `slots`: fillers for the templates' `{placeholders}` (`{name2}` draws a second, different value
  of `name`); `{team}` and `{cadence}` are shared by every family;
- `objects` and `causes`: words for outcome summaries and failure causes.

The families share words on purpose (pipeline, model, dashboard, data, weekly, customers, ...),
so that neither keyword overlap nor one distinctive word identifies a family.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("data-scientist", "data-engineer", "ml-engineer", "analytics-expert", "ai-engineer")

SHARED_SLOTS: dict[str, tuple[str, ...]] = {
    "team": ("finance", "marketing", "growth", "operations", "sales", "support", "product", "supply chain", "risk",
             "customer success"),
    "cadence": ("weekly", "daily", "monthly", "nightly", "quarterly"),
}


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    role: str
    slots: dict[str, tuple[str, ...]]
    history: tuple[str, ...]
    held_out: tuple[str, ...]
    lessons: tuple[str, ...]
    fresh: tuple[str, ...]
    objects: tuple[str, ...]
    causes: tuple[str, ...]


FAMILIES: tuple[Family, ...] = (
    Family(
        key="feature-pipelines", title="Feature pipelines", role="data-engineer",
        slots={"entity": ("customer", "merchant", "session", "device", "account"),
               "source": ("clickstream events", "the payments ledger", "CRM exports", "app telemetry", "order history"),
               "store": ("Feast", "the online feature store", "the offline store")},
        history=(
            "Build a {cadence} feature pipeline that aggregates {source} into {entity}-level features for {store}",
            "Add rolling 7-day and 30-day {entity} aggregates computed from {source} to the feature pipeline",
            "Backfill two years of {entity} features from {source} into {store}",
            "Port the {entity} feature computations from notebooks into a scheduled Spark pipeline",
            "Materialise {entity} features to {store} with point-in-time correct joins",
            "Create streaming {entity} features from {source} with a five-minute freshness target",
        ),
        held_out=(
            ("The {team} modellers need fresh per-{entity} signals derived from {source}; set up the job that "
             "computes and publishes them"),
            "Engineer reusable {entity} attributes out of {source} so that several models can share them",
            "Stand up recurring computation of {entity}-level model inputs from raw {source}",
            "We want {entity} descriptors refreshed {cadence} from {source} and served to online inference",
            "Turn the ad-hoc SQL that derives {entity} predictors from {source} into a maintained, versioned job",
        ),
        lessons=(
            "Join features as of the label timestamp; joining on the latest snapshot leaked future values into training.",
            "Backfills must run in monthly chunks with checkpoints; a single two-year job ran out of executor memory.",
            "Keep feature definitions in one registry file so the online and offline paths compute identical values.",
            "Deduplicate late-arriving events by event id before aggregating, or counts drift upward after replays.",
            "Put a freshness alert on every materialisation job; a silent scheduler failure served week-old values.",
        ),
        fresh=(
            "Normalise event timestamps to UTC before windowing; local-time windows double-counted the daylight-saving hour.",
            "Cap the cardinality of categorical aggregates; an unbounded merchant list exhausted the online store's memory.",
        ),
        objects=("the feature job", "the feature tables", "the aggregation pipeline"),
        causes=("the Spark job ran out of memory during the backfill", "online and offline values disagreed",
                "features leaked values from after the label date"),
    ),
    Family(
        key="model-training", title="Fraud and credit model training", role="ml-engineer",
        slots={"algo": ("gradient-boosted", "XGBoost", "LightGBM", "logistic regression", "neural network"),
               "target": ("fraud", "chargeback", "loan default", "account takeover"),
               "period": ("quarter", "half-year", "year"),
               "source": ("device", "merchant", "bureau", "velocity")},
        history=(
            "Train a {algo} {target} classifier on last {period}'s transactions snapshot",
            "Retrain the {target} scoring model with the new {source} features and compare it against production",
            "Run a hyperparameter sweep for the {target} model and register the best run",
            "Tune class weights for the imbalanced {target} training set and report precision at the review threshold",
            "Package the {target} model training code into a reproducible pipeline with tracked experiments",
        ),
        held_out=(
            ("Fit a new {target} detector on the labelled cases from the past {period} and tell us whether it beats "
             "what is live"),
            "Our {target} scorer has gone stale; produce a version with better recall at the same alert volume",
            "Search learning rate, depth and regularisation for the {target} estimator and log every trial",
            "Learn a {algo} model that flags likely {target} cases for the {team} reviewers",
            "Refresh the {target} risk predictor using the {source} signals and decide if it should replace the champion",
        ),
        lessons=(
            "Split training and validation by time, not at random; random splits overstated AUC by eight points.",
            "Calibrate scores with isotonic regression after reweighting classes, or the alert threshold moves.",
            "Fix every random seed and log the data snapshot hash with each run so that results can be reproduced.",
            "Compare challengers with the champion on the same frozen holdout; a rolling holdout made the comparison unfair.",
            "Allow for label delay: chargebacks arrive up to 60 days late, so the newest weeks look artificially clean.",
        ),
        fresh=(
            "Drop identifier-like columns before training; a leaked case number gave a perfect but useless validation score.",
            "Early-stop on validation PR-AUC rather than log loss; log loss kept improving while precision at the threshold fell.",
        ),
        objects=("the scoring model", "the new model version", "the training run"),
        causes=("the challenger lost to the champion on the holdout", "validation scores did not reproduce",
                "the alert volume doubled at the old threshold"),
    ),
    Family(
        key="executive-dashboards", title="Executive dashboards", role="analytics-expert",
        slots={"kpi": ("revenue", "gross margin", "net retention", "bookings", "active users", "churn"),
               "audience": ("the CEO", "the board", "the leadership team", "the regional VPs"),
               "tool": ("Looker", "Tableau", "Power BI", "Superset")},
        history=(
            "Build the {cadence} executive dashboard of {kpi} and {kpi2} for {audience} in {tool}",
            "Redesign the board KPI dashboard so that {kpi} trends are readable at a glance",
            "Add a {kpi} drill-down by region to the leadership dashboard",
            "Automate the {cadence} executive KPI report that the {team} team assembles by hand",
            "Reconcile the dashboard's {kpi} numbers with finance's month-end figures",
        ),
        held_out=(
            "{audience} wants a one-page view of how {kpi} and {kpi2} are trending; make it self-serve",
            "Give senior management a {cadence} scorecard tracking {kpi} against plan",
            "Replace the slide deck of top-line numbers with a live {tool} view for the exec offsite",
            "Make a summary screen for company leaders that shows {kpi} by business unit next to its targets",
            "Our top management keeps asking analysts for {kpi} figures; publish them somewhere they can look themselves",
        ),
        lessons=(
            "Agree metric definitions with finance before building; the dashboard used booking date, finance used recognition date.",
            "Executives read the top-left tile first: put the one headline number there with its target and trend.",
            "Pre-aggregate to a daily summary table; querying raw events made the board view time out during the meeting.",
            "Show week-over-week deltas with the comparison period labelled; an unlabelled percentage led to a wrong decision.",
            "Freeze the snapshot used for board packs so that numbers do not change after they were presented.",
        ),
        fresh=(
            "Exclude internal test accounts from every KPI tile; they inflated active users by four percent.",
            "Restrict drill-downs on salary-bearing cost data to finance; a leadership view exposed individual compensation.",
        ),
        objects=("the executive dashboard", "the KPI report", "the board view"),
        causes=("the figures did not match finance's numbers", "the dashboard timed out in the board meeting",
                "leadership found the layout unreadable"),
    ),
    Family(
        key="data-quality", title="Data-quality monitoring", role="data-engineer",
        slots={"table": ("orders", "payments", "customer profile", "inventory snapshot", "web session"),
               "check": ("null rates", "row counts", "schema changes", "duplicate keys", "freshness"),
               "tool": ("Great Expectations", "Soda", "dbt tests", "Monte Carlo")},
        history=(
            "Set up data quality monitoring on the {table} tables with alerts on {check}",
            "Add {tool} checks for {check} and {check2} to the {table} pipeline",
            "Build a data quality dashboard that shows {check} across the warehouse",
            "Investigate the {cadence} spike in {check} on the {table} data and add a guardrail",
            "Define data quality SLAs for the {table} dataset and page the owners on breaches",
        ),
        held_out=(
            "Catch broken {table} loads before analysts see them: validate {check} automatically and notify the owners",
            "We keep discovering bad {table} records days late; put automated expectations in front of the consumers",
            "Write tests that fail the run whenever the {table} table shows unusual {check}",
            "Make sure somebody gets paged when the {table} feed goes stale or its shape changes",
            "Give the {team} analysts confidence in the {table} numbers by guarding {check} and {check2} on every load",
        ),
        lessons=(
            "Alert on relative change against a seasonal baseline; fixed thresholds paged the on-call every Monday.",
            "Run checks before publishing a table, not after; consumers had already read the broken partition.",
            "Route each alert to the owning team with a runbook link, or alerts pile up unacknowledged.",
            "Track schema drift with a contract test; an upstream column rename silently turned a metric to zero.",
            "Quarantine failing rows instead of failing the whole load when fewer than one percent are bad.",
        ),
        fresh=(
            "Check distinct-key counts as well as row counts; a join fan-out kept row counts normal while duplicating customers.",
            "Silence checks during planned backfills only with an expiry; a forgotten mute hid a real outage for a week.",
        ),
        objects=("the data quality checks", "the monitoring suite", "the validation step"),
        causes=("alerts fired on every normal Monday", "a broken partition reached consumers before the checks ran",
                "nobody owned the alerts"),
    ),
    Family(
        key="rag-evaluation", title="RAG evaluation", role="ai-engineer",
        slots={"corpus": ("support articles", "policy documents", "product manuals", "engineering wiki",
                          "contract archive"),
               "llm": ("GPT-4o", "Claude", "Llama 3", "Mistral"),
               "metric": ("faithfulness", "answer relevance", "context recall", "citation accuracy")},
        history=(
            "Evaluate the RAG assistant over the {corpus} for {metric} with a labelled question set",
            "Build a golden question-answer set from the {corpus} to benchmark retrieval-augmented generation",
            "Compare chunk sizes and embedding models for retrieval quality on the {corpus}",
            "Set up an LLM-as-judge evaluation of {metric} for the {llm} answers over the {corpus}",
            "Measure the hallucination rate of the chatbot on questions about the {corpus}",
        ),
        held_out=(
            ("How good is our question-answering bot that searches the {corpus}? Score its answers for {metric} and "
             "report the weak spots"),
            "Assess whether the assistant's replies are actually grounded in the {corpus} passages it retrieves",
            "Design an offline test harness that grades the {llm}-backed search assistant before each release",
            "Find out which retriever settings give the chatbot the best evidence from the {corpus}",
            "Check how often the {corpus} helper bot makes things up, and set a quality bar for the next version",
        ),
        lessons=(
            "Score retrieval and generation separately; a low answer score was a retrieval miss, not a prompt problem.",
            "Validate the LLM judge against fifty human labels before trusting it; it over-rewarded long answers.",
            "Freeze the document index version for each evaluation run, or scores shift as the corpus is re-ingested.",
            "Include unanswerable questions in the golden set so that saying it does not know is rewarded.",
            "Write golden answers from the source passages, not from the model's output, to avoid grading it against itself.",
        ),
        fresh=(
            "Deduplicate near-identical chunks before indexing; duplicates crowded the top-k and hid the answer passage.",
            "Randomise answer order when the judge compares two systems; it preferred whichever came first.",
        ),
        objects=("the RAG evaluation", "the golden question set", "the judge scores"),
        causes=("the judge's scores disagreed with human reviewers", "scores shifted between runs on the same build",
                "the question set only covered easy lookups"),
    ),
    Family(
        key="demand-forecasting", title="Demand forecasting", role="data-scientist",
        slots={"product": ("grocery", "apparel", "spare parts", "beverage", "electronics"),
               "grain": ("store", "SKU", "region", "warehouse"),
               "horizon": ("13-week", "six-month", "one-quarter", "52-week")},
        history=(
            "Build a {horizon} demand forecast for {product} at {grain} level",
            "Forecast weekly unit sales of {product} per {grain} for replenishment planning",
            "Add promotions and holidays as regressors to the {product} demand forecasting model",
            "Backtest the {product} demand forecast against last year's actuals and report MAPE",
            "Replace the moving-average forecast for {product} with a gradient-boosted model",
        ),
        held_out=(
            ("Predict how many units of {product} each {grain} will sell over a {horizon} horizon so that buyers can "
             "order stock"),
            "Planners need expected {product} volumes per {grain}; project them ahead and quantify the uncertainty",
            "Estimate future {product} sales so that the {team} team can set inventory targets",
            "Tell merchandising how much {product} stock each {grain} should carry over the coming {horizon} period",
            "Anticipate {product} purchases by {grain} so replenishment orders stop running short",
        ),
        lessons=(
            "Backtest with a rolling origin; a single holdout split overstated forecast accuracy by a third.",
            "Model stock-outs as censored demand; treating zero sales during stock-outs as zero demand biased forecasts low.",
            "Reconcile store and regional forecasts hierarchically so that planners see totals that add up.",
            "Report prediction intervals, not only point forecasts; buyers set safety stock from the upper band.",
            "Encode moving holidays such as Easter explicitly; calendar-week features misplaced the seasonal peak.",
        ),
        fresh=(
            "Forecast new products from analogous items' launch curves; the model predicted zero for everything without history.",
            "Aggregate intermittent spare-part demand to monthly before fitting; weekly series were mostly zeros and the model collapsed.",
        ),
        objects=("the demand forecast", "the forecasting model", "the replenishment projections"),
        causes=("the backtest error was twice the target", "forecasts were biased low for promoted items",
                "store forecasts did not add up to the regional plan"),
    ),
    Family(
        key="churn-analysis", title="Churn analysis", role="data-scientist",
        slots={"segment": ("enterprise", "SMB", "consumer", "trial", "annual-plan"),
               "product": ("the mobile app", "the subscription service", "the analytics platform", "the telecom plans"),
               "signal": ("support tickets", "login frequency", "billing failures", "feature usage")},
        history=(
            "Analyse churn drivers for {segment} customers of {product}",
            "Build a churn prediction model for {segment} subscribers using {signal}",
            "Segment churned {segment} accounts and estimate the revenue at risk",
            "Measure how {signal} relates to cancellation among {segment} users",
            "Produce a churn cohort analysis for {product} by signup month",
        ),
        held_out=(
            "Why are {segment} clients leaving {product}? Identify the main reasons and who is likely to go next",
            "Flag {segment} accounts at risk of cancelling so that customer success can intervene",
            "Quantify which behaviours, such as {signal}, precede customers dropping {product}",
            "Look at how well we keep {segment} users over their first year and explain the drop-off",
            "Work out which {segment} subscribers will probably not renew and what tends to happen before they quit",
        ),
        lessons=(
            "Define churn with the billing team first; voluntary cancellations and failed payments behave differently.",
            "Exclude the observation window from features; using activity after the churn date leaked the label.",
            "Rank at-risk accounts by revenue, not only probability; customer success can call fifty accounts a week.",
            "Survival curves handled right-censored young accounts better than a binary 90-day label.",
            "Validate drivers on a holdout cohort; the link with support tickets vanished after controlling for tenure.",
        ),
        fresh=(
            "Treat plan downgrades as partial churn; counting them as retained hid most of the revenue loss.",
            "Remove accounts moved during the platform migration; their forced re-signups looked like churn and return.",
        ),
        objects=("the churn analysis", "the retention model", "the at-risk list"),
        causes=("the drivers did not hold on the next cohort", "the label leaked activity after cancellation",
                "customer success could not act on the list"),
    ),
    Family(
        key="ab-testing", title="A/B test analysis", role="analytics-expert",
        slots={"feature": ("checkout flow", "onboarding email", "pricing page", "search ranking", "recommendation widget"),
               "metric": ("conversion", "average order value", "retention", "click-through rate"),
               "surface": ("web", "iOS", "Android")},
        history=(
            "Analyse the A/B test of the new {feature} on {metric}",
            "Design an experiment for the {feature} change with a power analysis for {metric}",
            "Report the results of the {surface} {feature} experiment with confidence intervals",
            "Check the {feature} A/B test for sample ratio mismatch and novelty effects",
            "Run a CUPED variance-reduced analysis of the {feature} test",
        ),
        held_out=(
            "Did the redesigned {feature} actually move {metric}? Read out the split test honestly",
            "Tell product whether variant B of the {feature} beat control on {surface}",
            "Work out how many users and days we need to detect a one percent lift in {metric} from the {feature} change",
            "Evaluate the randomised rollout of the {feature} and recommend ship or no-ship",
            "The {team} team trialled two versions of the {feature}; decide which one wins on {metric} and how sure we are",
        ),
        lessons=(
            "Fix the primary metric and stopping rule before launch; peeking daily inflated false positives.",
            "Check sample ratio mismatch first; a broken assignment made the treatment look twice as good.",
            "Analyse at the randomisation unit; per-session analysis of user-randomised tests understated variance.",
            "Run tests for two full weeks to cover weekday cycles and let novelty effects fade.",
            "Correct for multiple comparisons when reporting many secondary metrics.",
        ),
        fresh=(
            "Exclude employees and bots from both arms; internal traffic concentrated in the control group.",
            "Verify the variant actually rendered on every platform; the Android build showed the control screen to treatment.",
        ),
        objects=("the experiment readout", "the test analysis", "the ship decision"),
        causes=("the test had a sample ratio mismatch", "the result did not replicate after launch",
                "the analysis peeked and stopped early"),
    ),
    Family(
        key="warehouse-migration", title="Data warehouse migration", role="data-engineer",
        slots={"source_db": ("Teradata", "Oracle", "on-prem Postgres", "Redshift", "Hive"),
               "target_db": ("Snowflake", "BigQuery", "Databricks"),
               "domain": ("finance", "marketing", "orders", "HR", "logistics")},
        history=(
            "Migrate the {domain} data warehouse from {source_db} to {target_db}",
            "Move the {domain} ETL jobs from {source_db} to dbt models on {target_db}",
            "Validate row counts and aggregates between {source_db} and {target_db} for the {domain} schema",
            "Plan the cut-over of {domain} reporting from {source_db} to {target_db}",
            "Convert the {source_db} stored procedures for {domain} into {target_db} SQL",
        ),
        held_out=(
            ("We are retiring {source_db}; lift the {domain} tables and transformations onto {target_db} without "
             "breaking reports"),
            "Re-platform the {domain} analytics store into the cloud and prove the numbers still match",
            "Translate the legacy {domain} SQL logic so that it runs natively on {target_db}",
            "Schedule and carry out the switch of {domain} consumers off the old {source_db} system",
            "Decommission the on-premise {domain} database once everything it feeds reads from {target_db} instead",
        ),
        lessons=(
            "Compare column-level checksums, not just row counts; decimal precision differences slipped through.",
            "Run old and new warehouses in parallel for a full month-end close before decommissioning.",
            "Inventory downstream consumers from query logs first; three unknown reports broke at cut-over.",
            "Translate timestamps explicitly; the source stored local time without a zone and the target assumed UTC.",
            "Migrate in domain slices with a rollback path rather than in one big-bang weekend.",
        ),
        fresh=(
            "Rewrite implicit case-insensitive string comparisons; the target's case-sensitive collation dropped joined rows.",
            "Reserve warehouse credits for the backfill; the migration's first load used the monthly budget in two days.",
        ),
        objects=("the migrated schema", "the cut-over", "the converted ETL jobs"),
        causes=("totals differed between the old and new warehouse", "unknown downstream reports broke at cut-over",
                "the backfill overran the migration window"),
    ),
    Family(
        key="anomaly-detection", title="Anomaly detection", role="ml-engineer",
        slots={"signal": ("payment volumes", "server latency", "sensor readings", "login attempts", "ad spend"),
               "system": ("the payments platform", "the factory line", "the ad marketplace", "the API gateway")},
        history=(
            "Build anomaly detection on {signal} for {system}",
            "Detect unusual spikes in {signal} with seasonal decomposition and alert the on-call",
            "Train an isolation forest on {signal} from {system} to flag outliers",
            "Reduce the false alarms of the {signal} anomaly detector",
            "Add real-time anomaly scoring of {signal} to the monitoring pipeline",
        ),
        held_out=(
            "Spot abnormal behaviour in {signal} on {system} as it happens and notify operations",
            "We want to be warned automatically when {signal} look wrong; build something that learns the normal pattern",
            "Identify the outlying {signal} events in the last {cadence} batches and explain which ones matter",
            "Find rare irregularities in {signal} without any labelled incidents to learn from",
            "Raise a flag whenever {system} shows {signal} that deviate from their usual rhythm",
        ),
        lessons=(
            "Model weekly seasonality before scoring; raw thresholds fired every Monday morning.",
            "Tune alert thresholds to a fixed false-alarm budget agreed with on-call, such as two pages a week.",
            "Keep labelled past incidents as a test set; unsupervised scores looked good but missed the real outages.",
            "Suppress repeated alerts for one ongoing anomaly; the detector paged forty times for a single incident.",
            "Retrain the baseline after planned changes such as migrations, or they look anomalous for weeks.",
        ),
        fresh=(
            "Handle missing data points explicitly; gaps from a collector restart were scored as extreme drops.",
            "Score per entity rather than in aggregate; one large merchant's anomaly vanished in the total.",
        ),
        objects=("the anomaly detector", "the outlier alerts", "the scoring service"),
        causes=("on-call was paged dozens of times for one event", "the detector missed a real outage",
                "alerts fired after every deploy"),
    ),
    Family(
        key="nlp-classification", title="NLP text classification", role="ai-engineer",
        slots={"text": ("support tickets", "customer reviews", "insurance claim notes", "chat transcripts", "emails"),
               "labels": ("topic", "intent", "urgency", "sentiment"),
               "languages": ("English", "German and French", "Spanish", "multilingual")},
        history=(
            "Train a text classifier that labels {text} by {labels}",
            "Fine-tune a transformer to classify {languages} {text} into {labels} categories",
            "Build the {labels} tagging model for incoming {text}",
            "Label a training set of {text} for {labels} classification and measure inter-annotator agreement",
            "Replace the keyword rules that route {text} with an NLP classifier",
        ),
        held_out=(
            "Automatically sort incoming {text} by {labels} so that they reach the right queue",
            "Teach a language model to tell which {labels} each of our {text} belongs to",
            "Categorise {languages} {text} without the brittle regex rules we use today",
            "Predict the {labels} of every new item among the {text} and send uncertain ones to a human",
            "The {team} desk spends hours triaging {text}; make software decide their {labels} for them",
        ),
        lessons=(
            "Write annotation guidelines with examples of borderline cases; agreement rose from 0.6 to 0.85.",
            "Report per-class F1; overall accuracy hid that the rare urgent class was almost never caught.",
            "Hold out by customer, not by message, since near-duplicate messages from one customer leaked across splits.",
            "Route low-confidence predictions to humans with a threshold chosen on the validation set.",
            "Strip signatures and quoted replies before classifying; they dominated the token budget.",
        ),
        fresh=(
            "Check the label distribution of live traffic monthly; a new product line created a category the model had never seen.",
            "Evaluate each language separately; the multilingual model was strong in English and weak in German.",
        ),
        objects=("the text classifier", "the routing model", "the labelled set"),
        causes=("the rare class was almost never predicted", "annotators disagreed on a third of the labels",
                "accuracy collapsed on live traffic"),
    ),
    Family(
        key="recommendations", title="Recommendation systems", role="ml-engineer",
        slots={"item": ("products", "articles", "videos", "courses", "restaurants"),
               "surface": ("home page", "email digest", "checkout page", "mobile feed"),
               "approach": ("two-tower", "matrix factorisation", "item-to-item", "session-based")},
        history=(
            "Build a {approach} recommender for {item} on the {surface}",
            "Improve the click-through of the {item} recommendation model on the {surface}",
            "Add cold-start handling to the {item} recommender",
            "Evaluate the {item} recommendations offline with recall@k and coverage",
            "Retrain the {approach} {item} recommendation model weekly with new interactions",
        ),
        held_out=(
            "Suggest relevant {item} to each user on the {surface} based on what similar people engaged with",
            "Personalise which {item} appear in the {surface} so that people find things they like",
            "Create a 'you may also like' module for {item} and measure whether it helps",
            "Rank candidate {item} per visitor for the {surface} using their history",
            "Show every shopper the {item} they are most likely to want next on the {surface}",
        ),
        lessons=(
            "Evaluate offline on a time-based split; random splits let the model see future interactions.",
            "Add popularity and diversity constraints; the recommender showed the same ten items to everyone.",
            "Log impressions as well as clicks, or unclicked exposures cannot be used as negatives.",
            "Serve new users a content-based fallback until they have five interactions.",
            "Filter out items the user already bought; repeat suggestions annoyed customers and lowered click-through.",
        ),
        fresh=(
            "Remove out-of-stock items at serving time; the model kept recommending sold-out products.",
            "Cap items per seller in a slate; one seller's cheap listings filled every position.",
        ),
        objects=("the recommender", "the ranking model", "the recommendations slate"),
        causes=("offline gains did not show in the online test", "everyone was shown the same popular items",
                "new users got empty slates"),
    ),
    Family(
        key="marketing-mix", title="Marketing mix modelling", role="data-scientist",
        slots={"channel": ("TV", "paid search", "social", "affiliate", "podcast"),
               "market": ("the UK", "Germany", "the US", "Brazil")},
        history=(
            "Build a marketing mix model of {channel} and {channel2} spend for {market}",
            "Estimate the ROI of {channel} campaigns in {market} with a Bayesian media mix model",
            "Add adstock and saturation curves for {channel} to the marketing mix model",
            "Recommend next quarter's budget split across {channel} and {channel2} from the mix model",
            "Attribute {market} sales to marketing channels with multi-touch attribution",
        ),
        held_out=(
            "How much revenue does each euro spent on {channel} bring back in {market}? Work out the return per channel",
            "Tell the CMO where to move advertising money between {channel} and {channel2} next quarter",
            "Quantify the diminishing returns of {channel} advertising and the delay before it pays off",
            "Explain which promotion channels drove {market} sales over the last two years",
            "Decide whether the {team} budget should shift from {channel} to {channel2}, with evidence",
        ),
        lessons=(
            "Put informative priors on adstock decay; unconstrained fits gave TV a two-year carryover.",
            "Include price and distribution changes as controls, or media gets the credit for a price cut.",
            "Validate against a geo lift test; the mix model over-credited paid search by half.",
            "Use at least two years of weekly data; one year could not separate seasonality from spend.",
            "Report ROI with uncertainty ranges; point estimates made a marginal channel look decisive.",
        ),
        fresh=(
            "Align spend and sales to the same week definition; finance weeks start on Monday and media weeks on Sunday.",
            "Model brand search as a mediator, not a channel; it absorbed credit that belonged to TV.",
        ),
        objects=("the mix model", "the channel ROI estimates", "the budget recommendation"),
        causes=("the model credited a channel that a lift test showed had no effect",
                "ROI estimates swung wildly between refits", "seasonality was confounded with spend"),
    ),
    Family(
        key="llm-extraction", title="LLM document extraction and summarisation", role="ai-engineer",
        slots={"doc": ("invoices", "sales call transcripts", "discharge notes", "legal contracts", "incident reports"),
               "field": ("totals and due dates", "action items", "key clauses", "root causes")},
        history=(
            "Build an LLM pipeline that extracts {field} from {doc}",
            "Prompt-engineer the {doc} summariser to capture {field}",
            "Evaluate the accuracy of LLM extraction of {field} from {doc}",
            "Add structured JSON output to the {doc} extraction prompts",
            "Reduce the cost per document of summarising {doc} with a smaller model",
        ),
        held_out=(
            "Pull {field} out of our {doc} automatically with a large language model and check that it gets them right",
            "Generate short digests of {doc} that people can trust for {field}",
            "Have the model read each of the {doc} and fill in a structured record",
            "Automate the reading of {doc} so that the {team} team no longer copies {field} by hand",
            "Use generative AI to turn {doc} into tidy fields for {field}, reliably enough for audit",
        ),
        lessons=(
            "Validate model output against a JSON schema and retry on failure; free text broke the downstream loader.",
            "Ask for a source quote with each extracted field so that reviewers can verify it quickly.",
            "Chunk long documents on section boundaries; splitting mid-table lost the totals.",
            "Measure field-level accuracy on a labelled sample before rollout; the summaries read well but the dates were wrong.",
            "Redact personal data before sending documents to an external model API.",
        ),
        fresh=(
            "Pin the model version in the API call; a silent provider upgrade changed the output format.",
            "Normalise dates and currencies after extraction; the model mixed US and European date orders.",
        ),
        objects=("the extraction pipeline", "the document summaries", "the structured records"),
        causes=("extracted dates were wrong on a third of the documents", "the output was not valid JSON",
                "reviewers could not verify the extracted fields"),
    ),
)

# Lessons that belong to no family: habits and chores, in the families' shared vocabulary.
NOISE_LESSONS: tuple[str, ...] = (
    "Post a short status update in the team channel when a task has been blocked for more than a day.",
    "Pin package versions in the project's lock file; an unpinned upgrade broke the weekly job.",
    "Tag cloud resources with the project name so that costs can be charged back.",
    "Write the README before handing over; the next person could not find the entry point.",
    "Ask for warehouse access a week early; permission requests take several days.",
    "Store credentials in the secrets manager, never in notebooks.",
    "Timebox exploratory work to two days and check in with the requester.",
    "Keep the data pipeline's configuration in version control, not in the scheduler's UI.",
    "Share an early draft of the model or dashboard; the stakeholders' first feedback changed the scope.",
    "Run large jobs on the shared compute cluster outside business hours.",
    "Record the data snapshot date in every report and model card.",
    "Prefix output tables with the owning team's name so that ownership is clear.",
)

SUCCESS_SUMMARIES: tuple[str, ...] = (
    "Delivered {obj} for the {team} team; checks passed and the owners signed off.",
    "Finished {obj} on time and reviewed the results with the {team} team.",
    "Shipped {obj}; the {team} stakeholders accepted it after one round of review.",
    "Completed {obj}. Handed over with documentation and a short walkthrough.",
)
FAILURE_SUMMARIES: tuple[str, ...] = (
    "Rolled back {obj}: {cause}.",
    "Stopped work on {obj} because {cause}.",
    "Review rejected {obj}: {cause}.",
)

# Project code names: neutral, so a project's name never tells which family it belongs to.
PROJECT_NAMES: tuple[str, ...] = (
    "atlas", "borealis", "cobalt", "driftwood", "ember", "fjord", "granite", "halcyon", "indigo", "juniper",
    "kestrel", "lumen", "meridian", "nimbus", "obsidian", "pinnacle", "quartz", "riverbend", "saffron", "tundra",
    "umber", "vantage", "willow", "xenon", "yarrow", "zephyr", "aurora", "basalt", "cypress", "dune",
)

# Agent names: neutral, so an agent's name never tells its speciality.
AGENT_NAMES: tuple[str, ...] = (
    "ada", "bruno", "chen", "dara", "elif", "farid", "greta", "hugo", "ines", "jonas", "kaya", "lior", "mara",
    "nils", "oona", "pavel", "quinn", "rosa", "sami", "tess", "umar", "vera", "wren", "xavi", "yuki", "zane",
    "amir", "bea", "cole", "dina", "emil", "fern", "gus", "hana", "ivo", "jade", "kurt", "lena", "milo", "nora",
    "otto", "pia", "reza", "sofi", "theo", "uma", "vik", "wilma",
)


def family(key: str) -> Family:
    for f in FAMILIES:
        if f.key == key:
            return f
    raise KeyError(key)
