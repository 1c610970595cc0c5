from dashboard.review_page import render

render()
