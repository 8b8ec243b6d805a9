"""The home screen: the enrolled users, who to enroll or authenticate, and what is wrong if anything is.

Problems the person can fix here are shown in a banner: a model that cannot be
loaded (with the fix), or a source that cannot be opened, such as no camera,
with a field to use a video file or a folder of frames instead.
"""

from __future__ import annotations

import datetime as dt

from kivy.app import App
from kivy.lang import Builder
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen
from kivy.utils import escape_markup

from facelivenet.edge_runtime.api import UserInfo

Builder.load_string("""
<HomeScreen>:
    BoxLayout:
        orientation: 'vertical'
        padding: dp(16)
        spacing: dp(10)
        Title:
            text: 'FaceLiveNet'
        Words:
            id: model
            text: ''
            color: 0.75, 0.77, 0.8, 1
        BoxLayout:
            id: banner
            orientation: 'vertical'
            size_hint_y: None
            height: self.minimum_height
            spacing: dp(6)
            Words:
                id: problem
                text: ''
                color: 0.98, 0.67, 0.15, 1
            BoxLayout:
                id: source_row
                size_hint_y: None
                height: dp(44)
                spacing: dp(6)
                TextInput:
                    id: source_path
                    hint_text: 'video file or folder of frames'
                    multiline: False
                    font_size: '15sp'
                Quiet:
                    text: 'Use this source'
                    size_hint_x: None
                    width: dp(150)
                    on_release: app.use_source(source_path.text)
        BoxLayout:
            size_hint_y: None
            height: dp(44)
            spacing: dp(6)
            Label:
                text: 'User'
                size_hint_x: None
                width: dp(60)
            TextInput:
                id: user
                multiline: False
                font_size: '17sp'
                hint_text: 'user id'
        Label:
            text: 'Enrolled users'
            size_hint_y: None
            height: dp(26)
            bold: True
            text_size: self.size
            halign: 'left'
        ScrollView:
            BoxLayout:
                id: users
                orientation: 'vertical'
                size_hint_y: None
                height: self.minimum_height
                spacing: dp(4)
        Action:
            id: enroll
            text: 'Enroll'
            on_release: app.start_enroll(user.text)
        Action:
            id: auth
            text: 'Authenticate'
            on_release: app.start_auth(user.text)
        Quiet:
            text: 'Settings'
            on_release: app.show_settings()
""")


class HomeScreen(Screen):
    """Enrolled users and the two actions; the banner says what blocks them."""

    def refresh(self, users: list[UserInfo], model: str, model_ok: bool, problem: str = "",
                offer_source: bool = False, matches=lambda u: True) -> None:
        ids = self.ids
        ids.model.text = model
        ids.problem.text = problem
        ids.banner.clear_widgets()
        if problem:
            ids.banner.add_widget(ids.problem)
        if offer_source:
            ids.banner.add_widget(ids.source_row)
        ids.enroll.disabled = ids.auth.disabled = not model_ok
        box = ids.users
        box.clear_widgets()
        if not users:
            box.add_widget(Label(text="nobody yet: type a user id and press Enroll", size_hint_y=None, height=32,
                                 color=(0.75, 0.77, 0.8, 1)))
        for info in users:
            box.add_widget(self._row(info, matches(info)))

    def _row(self, info: UserInfo, current_model: bool) -> BoxLayout:
        row = BoxLayout(size_hint_y=None, height=40, spacing=6)
        when = dt.datetime.fromtimestamp(info.created).strftime("%Y-%m-%d %H:%M")
        note = f"{info.images} frame(s), {when}" + ("" if current_model else ", other model: enroll again")
        pick = Button(text=f"{escape_markup(info.user_id)}   [size=13sp]{note}[/size]", markup=True, background_normal="",
                      background_color=(0.15, 0.16, 0.19, 1), halign="left")
        pick.bind(on_release=lambda *_: setattr(self.ids.user, "text", info.user_id))
        delete = Button(text="Delete", size_hint_x=None, width=80, background_normal="",
                        background_color=(0.45, 0.18, 0.18, 1))
        delete.bind(on_release=lambda *_: App.get_running_app().delete_user(info.user_id))
        row.add_widget(pick)
        row.add_widget(delete)
        return row

    def summary_text(self) -> str:
        """The main words on screen (recorded with screenshots)."""
        return self.ids.problem.text or self.ids.model.text
