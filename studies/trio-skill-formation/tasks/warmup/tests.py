from main import top_words


def test_example_from_the_instructions():
    assert top_words("The cat and the hat. The end!", 2) == [("the", 3), ("and", 1)]


def test_ties_are_alphabetical():
    assert top_words("b a c b a c", 3) == [("a", 2), ("b", 2), ("c", 2)]


def test_punctuation_and_case_are_ignored():
    assert top_words("Hello, hello! HELLO? (hello)", 1) == [("hello", 4)]


def test_empty_text_gives_no_words():
    assert top_words("", 3) == []
