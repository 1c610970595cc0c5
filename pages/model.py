from dashboard.model_page import render

render()
