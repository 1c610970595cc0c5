from dashboard.analytics_page import render

render()
