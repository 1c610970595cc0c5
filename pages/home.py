from dashboard.home_page import render

render()
