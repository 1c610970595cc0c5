from dashboard.admin_page import render

render()
