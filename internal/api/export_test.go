package api

// AnswerFirst is answerFirst, for its tests.
var AnswerFirst = answerFirst
