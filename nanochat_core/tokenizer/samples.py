"""tok_eval's built-in texts, one per kind of text a chat model meets (the report card measures them too)."""

SAMPLES = {
    "news": (
        "The city council voted 7-2 on Tuesday to approve a $48 million plan to rebuild the harbour "
        "bridge, which has been closed to heavy trucks since an inspection in March found corroded "
        "steel in two of its supports. Construction is expected to begin next spring and to last about "
        "three years, officials said, during which a temporary ferry service will carry commuters."
    ),
    "korean": (
        "오늘 아침 서울에는 올겨울 들어 가장 많은 눈이 내렸습니다. 기상청은 내일까지 최대 10센티미터의 "
        "눈이 더 올 것으로 예보했으며, 출근길 교통 혼잡에 대비해 대중교통을 이용해 달라고 당부했습니다."
    ),
    "code": (
        "def merge_intervals(intervals):\n"
        "    \"\"\"Merge overlapping [start, end] intervals.\"\"\"\n"
        "    merged = []\n"
        "    for start, end in sorted(intervals):\n"
        "        if merged and start <= merged[-1][1]:\n"
        "            merged[-1][1] = max(merged[-1][1], end)\n"
        "        else:\n"
        "            merged.append([start, end])\n"
        "    return merged\n"
    ),
    "math": (
        "Let $f(x) = x^3 - 6x^2 + 11x - 6$. Since $f(1) = 0$, we factor $f(x) = (x - 1)(x^2 - 5x + 6) "
        "= (x - 1)(x - 2)(x - 3)$. Hence the roots are $x \\in \\{1, 2, 3\\}$ and "
        "$\\int_0^1 f(x)\\,dx = \\frac{1}{4} - 2 + \\frac{11}{2} - 6 = -\\frac{9}{4}$."
    ),
    "science": (
        "Photosynthesis converts light energy into chemical energy: in the chloroplast, chlorophyll "
        "absorbs photons mostly at 430 nm and 662 nm, driving the splitting of water (2H2O -> 4H+ + 4e- + O2). "
        "The electrons reduce NADP+ to NADPH, while the proton gradient powers ATP synthase, and both "
        "feed the Calvin cycle, which fixes CO2 into three-carbon sugars."
    ),
}
