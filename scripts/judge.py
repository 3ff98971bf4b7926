#!/usr/bin/env python3
"""GPT judges for the judged benchmarks, against any OpenAI-compatible chat endpoint (standard library only).

    judge.py BENCH --input ANSWERS --output SCORES [--data BENCH_FILE] [--base-url URL] [--model NAME]
             [--api-key-env VAR] [--cache FILE] [--retries N] [--timeout S]

BENCH is one of mathvista, mathverse, mmvet, mmvet2, llavaw. ANSWERS is the judge input `phantom eval` writes
(<name>_judge_input.json[l]); BENCH_FILE is the benchmark file (mm-vet.json, mm-vet-v2.json, questions.jsonl) for
the judges that need the questions and references. As a `phantom eval` judge:

    --judge "python scripts/judge.py mmvet --input {input} --output {output} --data {data} --model gpt-4-0613"

The grading prompts are the ones the benchmarks' authors publish (MathVista's answer-extraction few-shot prompt,
MathVerse's extraction and consistency prompts, the MM-Vet and MM-Vet-v2 graders, LLaVA-Bench's reviewer rule);
sources in docs/evaluation.md. Every request is cached in --cache (default <output>.cache.jsonl), keyed by the
request itself, so a rerun costs no request. Transient failures (connection errors, HTTP 429 and 5xx) are retried
with exponential backoff; an unreachable endpoint ends with one line naming it.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict


class JudgeError(Exception):
    pass


# ---- the endpoint ------------------------------------------------------------------------------------------------

class Chat:
    """POST {base_url}/chat/completions with retries and a per-request cache (one JSON line per answered request)."""

    def __init__(self, base_url, model, api_key, cache_path, retries, timeout, backoff):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self.cache_path, self.cache = cache_path, {}
        self.requests = 0  # requests sent in this run (cache hits excluded)
        if cache_path and os.path.exists(cache_path):
            with open(cache_path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            e = json.loads(line)
                            self.cache[e["key"]] = e["reply"]
                        except (ValueError, KeyError):  # a line cut by a kill: that request is simply redone
                            print(f"judge: {cache_path}:{n}: unreadable cache line ignored", file=sys.stderr)

    def __call__(self, messages, temperature=0.0, max_tokens=256):
        body = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        key = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        if key in self.cache:
            return self.cache[key]
        reply = self._post(body)
        self.cache[key] = reply
        if self.cache_path:
            with open(self.cache_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")
        return reply

    def _post(self, body):
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.requests += 1
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    payload = json.loads(r.read().decode("utf-8"))
                return payload["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {e.code}: {detail}"
                if e.code != 429 and e.code < 500:  # a bad request or key: retrying cannot help
                    raise JudgeError(f"{self.url}: {last}")
            except urllib.error.URLError as e:
                last = f"cannot reach the endpoint ({e.reason})"
            except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
                last = f"bad reply ({type(e).__name__}: {e})"
        raise JudgeError(f"{self.url}: {last}; gave up after {self.retries + 1} tries")


# ---- files -------------------------------------------------------------------------------------------------------

def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise JudgeError(f"{path}: cannot read ({e.strerror})")
    except ValueError as e:
        raise JudgeError(f"{path}: not JSON ({e})")


def read_jsonl(path):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError as e:
                        raise JudgeError(f"{path}:{n}: not JSON ({e})")
    except OSError as e:
        raise JudgeError(f"{path}: cannot read ({e.strerror})")
    return out


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def need(args, what):
    if not args.data:
        raise JudgeError(f"{args.bench} needs --data ({what})")
    return args.data


def pct(k, n):
    return 100.0 * k / n if n else 0.0


# ---- MathVista: answer extraction (MathVista's prompts/ext_ans.py) + calculate_score.py's normalisation -------------

MATHVISTA_DEMO = """Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B"""


def levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def mathvista_extract(chat, p):
    """The rules of MathVista's extract_answer.py before asking the judge."""
    response = p.get("response") or ""
    if response == "":
        return ""
    if p.get("question_type") == "multi_choice" and response in (p.get("choices") or []):
        return response
    if p.get("answer_type") == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if p.get("answer_type") == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    prompt = f"{MATHVISTA_DEMO}\n\n{p['query']}\n\n{response}\n\nExtracted answer: "
    return chat([{"role": "user", "content": prompt}], 0.0, 256).strip()


def mathvista_normalize(extraction, p):
    """calculate_score.py's normalize_extracted_answer."""
    choices = p.get("choices") or []
    if p.get("question_type") == "multi_choice":
        extraction = str(extraction).strip()
        letter = re.findall(r"\(([a-zA-Z])\)", extraction)
        if letter:
            extraction = letter[0].upper()
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            return choices[options.index(extraction)]
        return min(choices, key=lambda c: levenshtein(extraction, c)) if choices else extraction
    if p.get("answer_type") == "integer":
        try:
            return str(int(float(extraction)))
        except (TypeError, ValueError):
            return None
    if p.get("answer_type") == "float":
        try:
            return str(round(float(extraction), int(p.get("precision") or 0)))
        except (TypeError, ValueError):
            return None
    return str(extraction)


def judge_mathvista(args, chat):
    problems = read_json(args.input)
    if not isinstance(problems, dict):
        raise JudgeError(f"{args.input}: expected MathVista's pid -> problem object")
    items, correct = {}, 0
    groups = defaultdict(lambda: [0, 0])
    for pid, p in problems.items():
        for k in ("query", "answer", "response"):
            if k not in p:
                raise JudgeError(f"{args.input}: problem {pid} has no '{k}'")
        extraction = mathvista_extract(chat, p)
        prediction = mathvista_normalize(extraction, p)
        ok = prediction is not None and prediction == str(p["answer"])
        correct += ok
        items[pid] = {"extraction": extraction, "prediction": prediction, "true_false": ok}
        meta = dict(p.get("metadata") or {})
        for key in ("question_type", "answer_type"):
            meta[key] = p.get(key)
        for key in ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade"):
            if meta.get(key) is not None:
                g = groups[f"{key}/{meta[key]}"]
                g[0] += ok
                g[1] += 1
        for skill in meta.get("skills") or []:
            g = groups[f"skills/{skill}"]
            g[0] += ok
            g[1] += 1
    scores = {"average": {"accuracy": pct(correct, len(problems)), "correct": correct, "total": len(problems)}}
    for k, (c, n) in sorted(groups.items()):
        scores[k] = {"accuracy": pct(c, n), "correct": c, "total": n}
    return scores, items


# ---- MathVerse: the extraction and consistency prompts of MathVerse's evaluation ------------------------------------

MATHVERSE_EXTRACT = """I am providing you a response from a model to a math problem, termed 'Model Response'. You should extract the answer from the response as 'Extracted Answer'. Directly output the extracted answer with no explanation.

1.
Model response: 'Rounded to two decimal places, the perimeter of the sector is approximately:\n\n(-2, 1)'
Extracted Answer: (-2, 1)

2.
Model response: 'at those points.\n\nTherefore, the correct option that represents the meaning of the intersection points of the graphs is:\n\nD. They give the solutions to the equation $f(t)=g(t)$.",'
Extracted Answer: D

3.
Model response: ' at 1 (there's a closed circle at y = 1), the range in interval notation is \\((-4, 1]\\).\n\nFinal values:\nDomain: \\((-3, 3]\\)\nRange: \\((-4, 1]\\)'
Extracted Answer: Domain: \\((-3, 3]\\)\nRange: \\((-4, 1]\\)

4.
Model response: 'As it stands, I cannot provide the correct option letter because there isn't enough information to solve for 'y'.'
Extracted Answer: null

5.
Model response: 'Given that AB = 17.6 meters, we can now substitute into the equation:\n\nd = 17.6 / cos(38\u00b0)\n\nTherefore, to one decimal place, the distance d between Ned and Bart is approximately 22.3 meters.'
Extracted answer: 22.3

6.
Model response:  have all the coefficients for the quadratic function:\n\\( f(x) = ax^2 + bx + c \\)\n\\( f(x) = -1x^2 - 2x + 1 \\)\n\nTherefore, the equation for the graphed function \\( f \\) is:\n\\( f(x) = -x^2 - 2x + 1 \\)"'
Extracted answer: f(x) = -x^2 - 2x + 1

7."""

MATHVERSE_SCORE = """Below are two answers to a math question. Question is [Question], [Standard Answer] is the standard answer to the question, and [Model_answer] is the answer extracted from a model's output to this question.  Determine whether these two answers are consistent.
Please note that only when the [Model_answer] completely matches the [Standard Answer] means they are consistent. For non-multiple-choice questions, if the meaning is expressed in the same way, it is also considered consistent, for example, 0.5m and 50cm.
If they are consistent, Judement is 1; if they are different, Judement is 0.

[Question]: Write the set of numbers represented on the number line in interval notation.
[Standard Answer]: (-2,1]
[Model_answer] : Extracted Answer: \\((-2, 1)\\)
Judgement: 0

[Question]: As shown in the figure, circle O has a radius 1.0, if angle BAC = 60.0, then the length of BC is ()\nChoices:\nA:2\nB:2\u221a{3}\nC:\u221a{3}\nD:2\u221a{2}
[Standard Answer]: C
[Model_answer] : B:2\u221a{3}
Judgement: 0

[Question]: Find the domain and range of the function f using interval notation.
[Standard Answer]: domain: [-4, 0) and range: (-3, 1]
[Model_answer] : Range: \\((-4, 1]\\)
Judgement: 0

[Question]: As shown in the figure, circle O has a radius 1.0, if angle BAC = 60.0, then the length of BC is ()\nChoices:\nA:2\nB:2\u221a{3}\nC:\u221a{3}\nD:2\u221a{2}
[Standard Answer]: C
[Model_answer] : null
Judgement: 0

[Question]: Given the graph of the ellipse that intersects with x-axis at 9 and -9 and with y-axis at 3 and -3, determine its equation.A. \\frac{x^2}{81} + \\frac{y^2}{9} = 1 B. Can not determine.\n
[Standard Answer]: A
[Model_answer] : \\frac{x^2}{81} + \\frac{y^2}{9} = 1
Judgement: 1

[Question]: {question}
[Standard Answer]: {gt}
[Model_answer] : {extraction}
Judgement: """


def judge_mathverse(args, chat):
    rows = read_json(args.input)
    if not isinstance(rows, list):
        raise JudgeError(f"{args.input}: expected the MathVerse results list")
    items, by_version, by_subject, right = {}, defaultdict(list), defaultdict(list), 0
    for r in rows:
        for k in ("sample_index", "question", "answer", "model_answer"):
            if k not in r:
                raise JudgeError(f"{args.input}: a row has no '{k}'")
        prompt = f"{MATHVERSE_EXTRACT}\n\nModel response: '{r['model_answer']}'\nExtracted Answer: "
        extraction = chat([{"role": "user", "content": prompt}], 0.0, 256).replace("Extracted Answer: ", "").strip()
        score_prompt = (MATHVERSE_SCORE.replace("{question}", str(r["question"])).replace("{gt}", str(r["answer"]))
                        .replace("{extraction}", extraction))
        judgement = None
        for attempt in range(args.format_retries + 1):  # MathVerse asks again on a reply that is not 0 or 1
            reply = chat([{"role": "user", "content": score_prompt}], 0.0 if attempt == 0 else 0.5 * attempt, 256)
            reply = reply.replace("Judgement:", "").strip()
            if reply in ("0", "1"):
                judgement = int(reply)
                break
        if judgement is None:
            judgement = 0
            print(f"judge: mathverse {r['sample_index']}: no 0/1 judgement; counted as 0", file=sys.stderr)
        right += judgement
        items[str(r["sample_index"])] = {"extraction": extraction, "judgement": judgement}
        by_version[r.get("problem_version", "")].append(judgement)
        by_subject[(r.get("metadata") or {}).get("subject", "")].append(judgement)
    scores = {"total": pct(right, len(rows)), "n": len(rows)}
    for v, js in sorted(by_version.items()):
        scores[f"version/{v}"] = pct(sum(js), len(js))
    for s, js in sorted(by_subject.items()):
        if s:
            scores[f"subject/{s}"] = pct(sum(js), len(js))
    return scores, items


# ---- MM-Vet and MM-Vet-v2 graders ----------------------------------------------------------------------------------

MMVET_PROMPT = """Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> in the ground truth means it is totally right only when all elements in the ground truth are present in the prediction, and <OR> means it is totally right when any one element in the ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0
"""

MMVET2_PROMPT = """Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <image> in the question indicates where an image is. <AND> in the ground truth means it is totally right only when all elements in the ground truth are present in the prediction, and <OR> means it is totally right when any one element in the ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score.

| Question | Ground truth | Prediction | Correctness |
| --- | --- | --- | --- |
| What is x in the equation?<image> | -1 <AND> -5 | x = 3 | 0.0 |
| What is x in the equation?<image> | -1 <AND> -5 | x = -1 | 0.5 |
| What is x in the equation?<image> | -1 <AND> -5 | x = -5 | 0.5 |
| What is x in the equation?<image> | -1 <AND> -5 | x = -5 or 5 | 0.5 |
| What is x in the equation?<image> | -1 <AND> -5 | x = -1 or x = -5 | 1.0 |
| Can you explain this meme?<image> | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4 |
| Can you explain this meme?<image> | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0 |
"""


def spaced(answer):
    return answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")


def mmvet_question(version, q, gt, pred):
    if version == 1:
        return MMVET_PROMPT + "\n" + " | ".join([q, spaced(gt), pred, ""])
    query = "".join("<image>" if part.endswith((".jpg", "jpeg", ".png")) else part for part in q.split("<IMG>"))
    return MMVET2_PROMPT + "| " + " | ".join([query.replace("\n", "<br>"), spaced(gt).replace("\n", "<br>"),
                                              pred.replace("\n", "<br>"), ""])


def judge_mmvet(args, chat, version):
    answers = read_json(args.input)
    data = read_json(need(args, "mm-vet.json" if version == 1 else "mm-vet-v2.json"))
    if not isinstance(answers, dict) or not isinstance(data, dict):
        raise JudgeError(f"{args.input}: expected id -> answer (and {args.data}: id -> question)")
    grades = {}
    for qid, line in data.items():
        if qid not in answers:
            raise JudgeError(f"{args.input}: no answer for {qid} (of {args.data})")
        question = mmvet_question(version, line["question"], line["answer"], answers[qid])
        score, content, temperature = None, "", 0.0
        for attempt in range(args.format_retries + 1):  # the graders ask again, warmer, on a non-number
            content = chat([{"role": "user", "content": question}], temperature, 3)
            try:
                s = float(content.split(" ")[0].strip())
                if 0.0 <= s <= 1.0:
                    score = s
                    break
            except ValueError:
                pass
            if attempt == 0:
                question += "\nPredict the correctness of the answer (digit): "
            temperature += 0.5
        if score is None:
            score = 0.0
            print(f"judge: mm-vet {qid}: no score in {content!r}; counted as 0.0", file=sys.stderr)
        grades[qid] = {"model": args.model, "content": [content], "score": [score]}
    return grades, None


# ---- LLaVA-Bench (in the wild): the reviewer rule of LLaVA's eval_gpt_review_bench.py ------------------------------

LLAVA_RULE = ("We would like to request your feedback on the performance of two AI assistants in response to the user "
              "question displayed above. The user asks the question on observing an image. For your reference, the "
              "visual content in the image is represented with a few sentences describing the image. \nPlease rate "
              "the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an "
              "overall score on a scale of 1 to 10, where a higher score indicates better overall performance.\n"
              "Please first output a single line containing only two values indicating the scores for Assistant 1 "
              "and 2, respectively. The two scores are separated by a space.\nIn the subsequent line, please provide "
              "a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order "
              "in which the responses were presented does not affect your judgment.")
LLAVA_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."


def parse_pair(review):
    sp = review.split("\n")[0].replace(",", " ").split(" ")
    try:
        return [float(sp[0]), float(sp[1])] if len(sp) == 2 else [-1, -1]
    except ValueError:
        return [-1, -1]


def judge_llavaw(args, chat):
    questions_path = need(args, "questions.jsonl")
    folder = os.path.dirname(os.path.abspath(questions_path))
    questions = {str(q["question_id"]): q for q in read_jsonl(questions_path)}
    context = {c["image"]: c for c in read_jsonl(os.path.join(folder, "context.jsonl"))}
    reference = {str(a["question_id"]): a for a in read_jsonl(os.path.join(folder, "answers_gpt4.jsonl"))}
    reviews = []
    for n, ans in enumerate(read_jsonl(args.input), 1):
        qid = str(ans["question_id"])
        if qid not in questions or qid not in reference:
            raise JudgeError(f"{args.input}:{n}: question {qid} is not in {questions_path} or answers_gpt4.jsonl")
        q = questions[qid]
        if q["image"] not in context:
            raise JudgeError(f"{folder}/context.jsonl: no caption for image {q['image']}")
        cap = context[q["image"]]["caption"]
        cap = "\n".join(cap) if isinstance(cap, list) else cap
        content = (f"[Context]\n{cap}\n\n[Question]\n{q['text']}\n\n"
                   f"[Assistant 1]\n{reference[qid]['text']}\n\n[End of Assistant 1]\n\n"
                   f"[Assistant 2]\n{ans['text']}\n\n[End of Assistant 2]\n\n[System]\n{LLAVA_RULE}\n\n")
        review = chat([{"role": "system", "content": LLAVA_SYSTEM}, {"role": "user", "content": content}], 0.2, 1024)
        reviews.append({"id": n, "question_id": ans["question_id"], "answer1_id": reference[qid].get("answer_id", qid),
                        "answer2_id": ans.get("answer_id", qid), "category": "llava_bench_" + q.get("category", ""),
                        "content": review, "tuple": parse_pair(review)})
    return reviews, None


# ---- main ----------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench", choices=["mathvista", "mathverse", "mmvet", "mmvet2", "llavaw"])
    ap.add_argument("--input", required=True, help="the judge input phantom eval wrote")
    ap.add_argument("--output", required=True, help="scores (MathVista, MathVerse), grades (MM-Vet) or reviews (LLaVA-W)")
    ap.add_argument("--data", help="the benchmark file: mm-vet.json, mm-vet-v2.json or LLaVA-W's questions.jsonl")
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    ap.add_argument("--model", default="gpt-4-0613")
    ap.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    ap.add_argument("--cache", help="request cache (default: <output>.cache.jsonl)")
    ap.add_argument("--retries", type=int, default=5, help="retries of a failed request (backoff doubles)")
    ap.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    ap.add_argument("--format-retries", type=int, default=4, help="re-asks when a reply has no score")
    args = ap.parse_args(argv)
    key = os.environ.get(args.api_key_env, "")
    chat = Chat(args.base_url, args.model, key, args.cache or args.output + ".cache.jsonl", args.retries,
                args.timeout, args.backoff)
    try:
        if args.bench == "mathvista":
            out, items = judge_mathvista(args, chat)
        elif args.bench == "mathverse":
            out, items = judge_mathverse(args, chat)
        elif args.bench in ("mmvet", "mmvet2"):
            out, items = judge_mmvet(args, chat, 1 if args.bench == "mmvet" else 2)
        else:
            out, items = judge_llavaw(args, chat)
    except JudgeError as e:
        print(f"judge {args.bench}: {e}", file=sys.stderr)
        return 2
    if args.bench == "llavaw":
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in out:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, args.output)
    else:
        write_json(args.output, out)
    if items is not None:
        write_json(args.output + ".items.json", items)
    print(f"judge {args.bench}: {args.output} written ({chat.requests} requests sent, {len(chat.cache)} cached)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
